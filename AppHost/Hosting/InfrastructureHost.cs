using System.Diagnostics;
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
/// <remarks>
/// The servers it started are supervised as the projects are: every <see cref="ProbeInterval"/> (and
/// at once when the process exits) it checks that the process lives and answers a real request
/// (<c>SELECT 1</c>, <c>PING</c>, the AMQP handshake); the resource's state, health and restarts show
/// it. A server that died is started again on the same port with the same data, after a back-off of
/// 1 s, 2 s, 4 s … 30 s between failed attempts (back to 1 s after a minute of running); the services
/// reconnect by themselves (Npgsql's pool, StackExchange.Redis, MassTransit). A server that runs but
/// does not answer is shown Unhealthy and left alone (it may be busy or frozen on purpose).
/// </remarks>
internal sealed class InfrastructureHost(AppHostOptions options, IReadOnlyList<Resource> resources, ILogger logger) : IAsyncDisposable
{
    public static readonly TimeSpan ProbeInterval = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan MinBackOff = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan MaxBackOff = TimeSpan.FromSeconds(30);

    private readonly CancellationTokenSource _supervising = new();
    private readonly List<Task> _supervisors = [];
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
                Durable = options.Durable,
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

        foreach (var server in _started?.Servers ?? [])
        {
            Resource? resource = server.Name switch { "postgres" => postgres, "redis" => redis, "rabbitmq" => rabbit, _ => null };
            if (resource is null) continue;
            IReadOnlyList<Resource> followers = resource is PostgresServerResource pg ? pg.Databases : [];
            _supervisors.Add(Task.Run(() => SuperviseAsync(server, resource, followers, _supervising.Token), CancellationToken.None));
        }
    }

    /// <summary>Watches one server we started: probes it, and starts it again (same port, same data) when it dies.</summary>
    private async Task SuperviseAsync(IServerProcess server, Resource resource, IReadOnlyList<Resource> followers, CancellationToken ct)
    {
        var backOff = MinBackOff;
        var runningSince = Stopwatch.StartNew();
        var failedProbes = 0;
        void Show(ResourceState state, string health, string? description)
        {
            foreach (var r in followers.Prepend(resource))
            {
                (r.State, r.Health, r.HealthDescription) = (state, health, description);
                if (state != ResourceState.Running) r.ProcessId = null;
            }
        }
        try
        {
            while (true)
            {
                await Task.WhenAny(server.WhenExited, Task.Delay(ProbeInterval, ct));
                ct.ThrowIfCancellationRequested();
                if (server.IsRunning)
                {
                    var answered = await server.ProbeAsync(ct);
                    if (answered && server.IsRunning)
                    {
                        if (failedProbes > 0) logger.LogInformation("{Resource} answers again", resource.Name);
                        failedProbes = 0;
                        Show(ResourceState.Running, "Healthy", null);
                        continue;
                    }
                    if (server.IsRunning)
                    {
                        if (failedProbes++ == 0) logger.LogWarning("{Resource} (pid {Pid}) runs but does not answer {Probe}", resource.Name, server.ProcessId, ProbeName(server));
                        Show(ResourceState.Running, "Unhealthy", $"runs but did not answer {ProbeName(server)} within 3 s ({failedProbes} probes in a row)");
                        continue;
                    }
                }

                // The process is gone: start it again, same port, same data, with back-off between failed attempts.
                var died = Stopwatch.StartNew();
                var pid = resource.ProcessId;
                if (runningSince.Elapsed > TimeSpan.FromMinutes(1)) backOff = MinBackOff;
                resource.Restarts++;
                Show(ResourceState.Restarting, "Unhealthy", $"the process (pid {pid}) is gone; starting it again on port {server.Port} (restart #{resource.Restarts})");
                logger.LogWarning("{Resource} (pid {Pid}) is gone; starting it again on port {Port} with the same data in {Seconds}s (restart #{Restart})",
                    resource.Name, pid, server.Port, backOff.TotalSeconds, resource.Restarts);
                for (var attempt = 1; ; attempt++)
                {
                    await Task.Delay(backOff, ct);
                    backOff = TimeSpan.FromTicks(Math.Min(backOff.Ticks * 2, MaxBackOff.Ticks));
                    try
                    {
                        await server.RestartAsync(ct);
                        break;
                    }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        var reason = e.Message.Split('\n')[0];
                        logger.LogWarning("{Resource} did not come back (attempt {Attempt}): {Reason}; next attempt in {Seconds}s",
                            resource.Name, attempt, reason, backOff.TotalSeconds);
                        Show(ResourceState.Restarting, "Unhealthy", $"attempt {attempt} to start it again failed: {reason}");
                    }
                }
                runningSince.Restart();
                failedProbes = 0;
                foreach (var r in followers.Prepend(resource)) r.StartedAt = DateTimeOffset.UtcNow;
                Show(ResourceState.Running, "Healthy", null);
                resource.ProcessId = server.ProcessId;
                logger.LogInformation("{Resource} is back (pid {Pid}, port {Port}) {Seconds:0.0} s after it was found gone",
                    resource.Name, server.ProcessId, server.Port, died.Elapsed.TotalSeconds);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
        catch (Exception e)
        {
            resource.State = ResourceState.Failed;
            logger.LogError(e, "Supervising {Resource} failed", resource.Name);
        }
    }

    private static string ProbeName(IServerProcess server) => server.Name switch
    {
        "postgres" => "SELECT 1",
        "redis" => "PING",
        "rabbitmq" => "the AMQP handshake",
        _ => "a probe",
    };

    /// <summary>Stops the servers we started (data kept unless ephemeral).</summary>
    public async ValueTask DisposeAsync()
    {
        await _supervising.CancelAsync(); // nothing is started again while we stop
        await Task.WhenAll(_supervisors);
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
