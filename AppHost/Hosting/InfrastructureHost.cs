using Crm.Launcher;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Crm.AppHost.Hosting;

/// <summary>
/// Brings up the Postgres, Redis and RabbitMQ resources: each one named by
/// <c>ConnectionStrings:&lt;name&gt;</c> is used as given, the others are started by the Launcher
/// (in parallel, data under the AppHost's data folder). Then creates the databases.
/// </summary>
internal sealed class InfrastructureHost(AppHostOptions options, IReadOnlyList<Resource> resources, ILogger logger) : IAsyncDisposable
{
    private Infrastructure? _started;

    public async Task StartAsync(CancellationToken ct)
    {
        var postgres = resources.OfType<PostgresServerResource>().SingleOrDefault();
        var redis = resources.OfType<RedisResource>().SingleOrDefault();
        var rabbit = resources.OfType<RabbitMQResource>().SingleOrDefault();
        var infra = new Resource?[] { postgres, redis, rabbit }.OfType<Resource>().ToList();
        foreach (var resource in infra.Concat(postgres?.Databases ?? [])) resource.State = ResourceState.Starting;

        string? External(Resource? r) => r is null ? null : options.Configuration.GetConnectionString(r.Name) is { Length: > 0 } cs ? cs : null;
        var (externalPostgres, externalRedis, externalRabbit) = (External(postgres), External(redis), External(rabbit));

        if ((postgres is not null && externalPostgres is null) || (redis is not null && externalRedis is null) || (rabbit is not null && externalRabbit is null))
        {
            logger.LogInformation("Starting infrastructure in {Folder}", options.DataDirectory);
            var byServer = new Dictionary<string, Resource?> { ["postgres"] = postgres, ["redis"] = redis, ["rabbitmq"] = rabbit };
            _started = await Infrastructure.StartAsync(new InfrastructureOptions
            {
                DataDirectory = options.DataDirectory,
                DeleteDataOnDispose = options.Ephemeral,
                Durable = !options.Ephemeral,
                StartPostgres = postgres is not null && externalPostgres is null,
                StartRedis = redis is not null && externalRedis is null,
                StartRabbitMq = rabbit is not null && externalRabbit is null,
                Databases = externalPostgres is null ? postgres?.Databases.Select(d => d.DatabaseName).ToList() ?? [] : [],
                OutputReceived = (server, line) => (byServer.GetValueOrDefault(server))?.Logs.Add(line),
            }, logger, ct);
        }

        if (postgres is not null)
        {
            if (externalPostgres is not null) await UseExternalPostgresAsync(postgres, externalPostgres, ct);
            else Use(postgres, _started!.Postgres!);
        }
        if (redis is not null)
        {
            if (externalRedis is not null) UseExternalRedis(redis, externalRedis);
            else Use(redis, _started!.Redis!.ConnectionString, _started.Redis.Port, _started.Redis.ProcessId);
        }
        if (rabbit is not null)
        {
            rabbit.Uri = externalRabbit is not null ? ParseAmqp(externalRabbit) : _started!.RabbitMq!.AmqpUri;
            rabbit.ProcessId = externalRabbit is null ? _started!.RabbitMq!.ProcessId : null;
            rabbit.SetEndpoint("amqp", $"amqp://{rabbit.Uri.Host}:{rabbit.Uri.Port}");
            Running(rabbit, externalRabbit is not null);
        }
    }

    /// <summary>Stops the servers we started (data kept unless ephemeral).</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var resource in resources.Where(r => r is not ProjectResource && r.State == ResourceState.Running))
            resource.State = ResourceState.Stopping;
        if (_started is not null) await _started.DisposeAsync();
        foreach (var resource in resources.Where(r => r is not ProjectResource && r.State == ResourceState.Stopping))
        {
            resource.State = ResourceState.Stopped;
            resource.ProcessId = null;
        }
    }

    private static void Use(PostgresServerResource postgres, PostgresServer server)
    {
        (postgres.Host, postgres.Port, postgres.Username, postgres.Password) = (server.Host, server.Port, server.Username, server.Password);
        postgres.ProcessId = server.ProcessId;
        PostgresReady(postgres, external: false);
    }

    private async Task UseExternalPostgresAsync(PostgresServerResource postgres, string connectionString, CancellationToken ct)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        (postgres.Host, postgres.Port, postgres.Username, postgres.Password) =
            (builder.Host ?? "127.0.0.1", builder.Port, builder.Username ?? "postgres", builder.Password ?? "");
        logger.LogInformation("Using the Postgres server of ConnectionStrings:{Name} ({Host}:{Port})", postgres.Name, postgres.Host, postgres.Port);
        foreach (var database in postgres.Databases)
            await PostgresServer.CreateDatabaseAsync(postgres.ConnectionString("postgres"), database.DatabaseName, ct);
        PostgresReady(postgres, external: true);
    }

    private static void PostgresReady(PostgresServerResource postgres, bool external)
    {
        postgres.SetEndpoint("tcp", $"tcp://{postgres.Host}:{postgres.Port}");
        Running(postgres, external);
        foreach (var database in postgres.Databases)
        {
            database.SetEndpoint("database", $"postgres://{postgres.Host}:{postgres.Port}/{database.DatabaseName}");
            Running(database, external);
        }
    }

    private void UseExternalRedis(RedisResource redis, string connectionString)
    {
        var endpoint = connectionString.Split(',')[0].Trim();
        var colon = endpoint.LastIndexOf(':');
        var (host, port) = colon > 0 && int.TryParse(endpoint[(colon + 1)..], out var p) ? (endpoint[..colon], p) : (endpoint, 6379);
        logger.LogInformation("Using the Redis server of ConnectionStrings:{Name} ({Host}:{Port})", redis.Name, host, port);
        redis.Host = host;
        Use(redis, connectionString, port, null, external: true);
    }

    private static void Use(RedisResource redis, string connectionString, int port, int? pid, bool external = false)
    {
        (redis.ConnectionString, redis.Port, redis.ProcessId) = (connectionString, port, pid);
        redis.SetEndpoint("tcp", $"tcp://{redis.Host}:{port}");
        Running(redis, external);
    }

    private static Uri ParseAmqp(string connectionString)
    {
        var uri = new Uri(connectionString);
        return uri.Port > 0 ? uri : new UriBuilder(uri) { Port = uri.Scheme == "amqps" ? 5671 : 5672 }.Uri;
    }

    private static void Running(Resource resource, bool external)
    {
        resource.State = ResourceState.Running;
        resource.Health = external ? null : "Healthy";
        resource.StartedAt = DateTimeOffset.UtcNow;
        resource.MarkReady();
    }
}
