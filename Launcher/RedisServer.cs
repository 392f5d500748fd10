using System.Globalization;
using Crm.Launcher.Internal;
using Microsoft.Extensions.Logging;

namespace Crm.Launcher;

/// <summary>
/// A Redis server in <c>&lt;data&gt;/redis</c> (redis.conf written at each start, redis.log),
/// bound to 127.0.0.1. Durable: append-only file; otherwise no persistence at all.
/// </summary>
public sealed class RedisServer : IServerProcess
{
    private readonly InfrastructureOptions _options;
    private readonly ILogger _logger;
    private readonly string _executable;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private ChildProcess? _process;

    private RedisServer(InfrastructureOptions options, ILogger logger, string executable, string folder, int port)
    {
        _options = options;
        _logger = logger;
        _executable = executable;
        Folder = folder;
        Port = port;
    }

    public string Name => "redis";
    public string Host => "127.0.0.1";
    public int Port { get; }
    public string Folder { get; }

    /// <summary>StackExchange.Redis configuration string: <c>127.0.0.1:port</c>.</summary>
    public string ConnectionString => $"{Host}:{Port}";

    public int? ProcessId => _process is { HasExited: false } p ? p.Pid : null;

    public bool IsRunning => _process is { IsRunning: true };

    public Task WhenExited => _process?.Exited ?? Task.CompletedTask;

    /// <summary>PING answered with +PONG within 3 s.</summary>
    public Task<bool> ProbeAsync(CancellationToken ct = default) => Readiness.RedisPingAsync(Port, ct);

    /// <summary>Starts redis-server again after it died, on the same port and folder (it reloads its append-only file when durable).</summary>
    public async Task RestartAsync(CancellationToken ct = default)
    {
        await _gate.WaitAsync(ct);
        try
        {
            if (IsRunning) return;
            _process?.Kill();
            await Leftovers.StopAsync(Folder, Posix.SIGTERM, ["redis-server", "crm-watchdog"], _logger);
            try
            {
                await RunAsync(ct);
            }
            catch
            {
                _process?.Kill();
                throw;
            }
        }
        finally { _gate.Release(); }
    }

    internal static async Task<RedisServer> StartAsync(InfrastructureOptions options, ILogger logger, CancellationToken ct)
    {
        var executable = Binaries.Redis(options.RedisServerPath);
        var folder = Path.Combine(options.DataDirectory, "redis");
        Directory.CreateDirectory(folder);
        await Leftovers.StopAsync(folder, Posix.SIGTERM, ["redis-server", "crm-watchdog"], logger);

        var portFile = Path.Combine(folder, "port");
        var port = Ports.GetFree(File.Exists(portFile) && int.TryParse(File.ReadAllText(portFile), out var p) ? p : null);
        File.WriteAllText(portFile, port.ToString(CultureInfo.InvariantCulture));

        var config = Path.Combine(folder, "redis.conf");
        File.WriteAllLines(config,
        [
            "# written by Crm.Launcher at each start",
            "bind 127.0.0.1",
            $"port {port}",
            $"dir {folder}",
            "daemonize no",
            "supervised no",
            "logfile \"\"",
            "always-show-logo no",
            .. options.Durable
                ? new[] { "appendonly yes", "appendfsync everysec", "save 3600 1 300 100 60 10000" }
                : ["appendonly no", "save \"\""],
        ]);

        var server = new RedisServer(options, logger, executable, folder, port);
        await server.RunAsync(ct);
        return server;
    }

    private async Task RunAsync(CancellationToken ct)
    {
        var process = _process = ChildProcess.Start(new ChildProcessOptions
        {
            Name = "redis",
            FileName = _executable,
            Arguments = [Path.Combine(Folder, "redis.conf")],
            WorkingDirectory = Folder,
            LogFile = Path.Combine(Folder, "redis.log"),
            StopSignal = Posix.SIGTERM,
            StopTimeout = _options.StopTimeout,
            Logger = _logger,
            OutputReceived = _options.OutputReceived is { } output ? line => output("redis", line) : null,
        });
        await process.WaitForPidAsync(ct);
        Leftovers.Record(Folder, process);
        await Readiness.WaitAsync("redis", process, _options.StartTimeout, token => Readiness.RedisPingAsync(Port, token), ct);
        _logger.LogDebug("Redis accepts connections on 127.0.0.1:{Port}", Port);
    }

    internal async Task StopAsync()
    {
        await _gate.WaitAsync();
        try
        {
            if (_process is null) return;
            await _process.DisposeAsync();
            _process = null;
        }
        finally { _gate.Release(); }
    }
}
