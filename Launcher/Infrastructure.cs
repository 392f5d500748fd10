using System.Diagnostics;
using Crm.Launcher.Internal;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Crm.Launcher;

/// <summary>
/// Postgres, Redis and RabbitMQ from the Debian packages, run as child processes on free loopback
/// ports with their data under <see cref="InfrastructureOptions.DataDirectory"/>. Dispose stops them
/// (and deletes the folder for tests). A watchdog stops them too if this process dies.
/// </summary>
public sealed class Infrastructure : IAsyncDisposable
{
    private readonly InfrastructureOptions _options;
    private readonly ILogger _logger;
    private int _disposed;

    private Infrastructure(InfrastructureOptions options, ILogger logger, PostgresServer? postgres, RedisServer? redis, RabbitMqServer? rabbitMq)
    {
        _options = options;
        _logger = logger;
        Postgres = postgres;
        Redis = redis;
        RabbitMq = rabbitMq;
    }

    public PostgresServer? Postgres { get; }
    public RedisServer? Redis { get; }
    public RabbitMqServer? RabbitMq { get; }
    public string DataDirectory => _options.DataDirectory;

    /// <summary>The servers started here, for a supervisor: probe them, start them again when they die.</summary>
    public IReadOnlyList<IServerProcess> Servers => new IServerProcess?[] { Postgres, Redis, RabbitMq }.OfType<IServerProcess>().ToList();

    /// <summary>Starts the requested servers in parallel and returns once each accepts connections.</summary>
    public static async Task<Infrastructure> StartAsync(InfrastructureOptions options, ILogger? logger = null, CancellationToken ct = default)
    {
        logger ??= NullLogger.Instance;
        var stopwatch = Stopwatch.StartNew();
        var folder = DataLocation.Resolve(options.DataDirectory, Users(options));
        if (folder != Path.GetFullPath(options.DataDirectory))
        {
            logger.LogWarning("{Requested} is not reachable by the users postgres and rabbitmq run as; keeping the data in {Folder}",
                options.DataDirectory, folder);
            DataLocation.Prepare(folder, options.DataDirectory);
            options = options.WithDataDirectory(folder);
        }
        Directory.CreateDirectory(options.DataDirectory);
        Commands.MakeTraversable(options.DataDirectory);

        var postgres = options.StartPostgres ? Task.Run(() => PostgresServer.StartAsync(options, logger, ct), ct) : Task.FromResult<PostgresServer>(null!);
        var redis = options.StartRedis ? Task.Run(() => RedisServer.StartAsync(options, logger, ct), ct) : Task.FromResult<RedisServer>(null!);
        var rabbitMq = options.StartRabbitMq ? Task.Run(() => RabbitMqServer.StartAsync(options, logger, ct), ct) : Task.FromResult<RabbitMqServer>(null!);
        try
        {
            await Task.WhenAll(postgres, redis, rabbitMq);
        }
        catch
        {
            // Stop whatever did start, then report every failure.
            var started = new Infrastructure(options, logger, Result(postgres), Result(redis), Result(rabbitMq));
            await started.DisposeAsync();
            var errors = new Task[] { postgres, redis, rabbitMq }.Where(t => t.IsFaulted).SelectMany(t => t.Exception!.InnerExceptions).ToList();
            if (errors.Count == 1) throw errors[0] is InfrastructureException ? errors[0] : new InfrastructureException(errors[0].Message, errors[0]);
            if (errors.Count > 1) throw new InfrastructureException(string.Join("\n\n", errors.Select(e => e.Message)), new AggregateException(errors));
            throw; // cancelled
        }
        var infrastructure = new Infrastructure(options, logger, postgres.Result, redis.Result, rabbitMq.Result);
        logger.LogInformation("Infrastructure started in {Seconds:0.0} s ({Folder})", stopwatch.Elapsed.TotalSeconds, options.DataDirectory);
        return infrastructure;
    }

    /// <summary>Stops every server (services should be stopped before); deletes the folder when asked to.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        var stops = new List<Task>();
        if (Postgres is not null) stops.Add(Postgres.StopAsync());
        if (Redis is not null) stops.Add(Redis.StopAsync());
        if (RabbitMq is not null) stops.Add(RabbitMq.DisposeAsync());
        try
        {
            await Task.WhenAll(stops);
        }
        catch (Exception e)
        {
            _logger.LogWarning(e, "Stopping the infrastructure failed");
        }
        if (_options.DeleteDataOnDispose) DeleteFolder(_options.DataDirectory);
        _logger.LogDebug("Infrastructure stopped");
    }

    private void DeleteFolder(string folder)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
                return;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException && attempt < 5)
            {
                Thread.Sleep(200); // a server may still be removing its own files
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                _logger.LogWarning(e, "Could not delete {Folder}", folder);
                return;
            }
        }
    }

    private static IEnumerable<string> Users(InfrastructureOptions options) =>
        (options.StartPostgres ? ["postgres"] : Array.Empty<string>()).Concat(options.StartRabbitMq ? ["rabbitmq"] : []);

    private static T? Result<T>(Task<T> task) where T : class => task.IsCompletedSuccessfully ? task.Result : null;
}
