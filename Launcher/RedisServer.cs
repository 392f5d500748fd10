using System.Globalization;
using Crm.Launcher.Internal;
using Microsoft.Extensions.Logging;

namespace Crm.Launcher;

/// <summary>
/// A Redis server in <c>&lt;data&gt;/redis</c> (redis.conf written at each start, redis.log),
/// bound to 127.0.0.1. Durable: append-only file; otherwise no persistence at all.
/// </summary>
public sealed class RedisServer
{
    private ChildProcess? _process;

    private RedisServer(string folder, int port)
    {
        Folder = folder;
        Port = port;
    }

    public string Host => "127.0.0.1";
    public int Port { get; }
    public string Folder { get; }

    /// <summary>StackExchange.Redis configuration string: <c>127.0.0.1:port</c>.</summary>
    public string ConnectionString => $"{Host}:{Port}";

    public int? ProcessId => _process is { HasExited: false } p ? p.Pid : null;

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

        var server = new RedisServer(folder, port);
        server._process = ChildProcess.Start(new ChildProcessOptions
        {
            Name = "redis",
            FileName = executable,
            Arguments = [config],
            WorkingDirectory = folder,
            LogFile = Path.Combine(folder, "redis.log"),
            StopSignal = Posix.SIGTERM,
            StopTimeout = options.StopTimeout,
            Logger = logger,
            OutputReceived = options.OutputReceived is { } output ? line => output("redis", line) : null,
        });
        await server._process.WaitForPidAsync(ct);
        Leftovers.Record(folder, server._process);
        await Readiness.WaitAsync("redis", server._process, options.StartTimeout, token => Readiness.RedisPingAsync(port, token), ct);
        logger.LogDebug("Redis accepts connections on 127.0.0.1:{Port}", port);
        return server;
    }

    internal async Task StopAsync()
    {
        if (_process is null) return;
        await _process.DisposeAsync();
        _process = null;
    }
}
