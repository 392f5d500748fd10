using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Crm.Launcher.Internal;
using Microsoft.Extensions.Logging;

namespace Crm.Launcher;

/// <summary>
/// A RabbitMQ node in <c>&lt;data&gt;/rabbitmq</c>, run as user rabbitmq, with no plugins, AMQP on
/// 127.0.0.1 only, user guest/guest. It gets its own epmd on a private port (started by us in the
/// foreground, so it is stopped with the node instead of lingering as a daemon), a node name unique
/// to the data folder and a HOME holding its .erlang.cookie.
/// </summary>
public sealed class RabbitMqServer : IServerProcess
{
    private const string User = "rabbitmq";
    private readonly InfrastructureOptions _options;
    private readonly ILogger _logger;
    private readonly int _distPort;
    private readonly int _epmdPort;
    private readonly string _nodeName;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private ChildProcess? _epmd;
    private ChildProcess? _node;

    private RabbitMqServer(InfrastructureOptions options, ILogger logger, string folder, int port, int distPort, int epmdPort)
    {
        _options = options;
        _logger = logger;
        Folder = folder;
        Port = port;
        _distPort = distPort;
        _epmdPort = epmdPort;
        // Unique per data folder and stable across runs: the mnesia folder is named after the node.
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Path.GetFullPath(folder))))[..10];
        _nodeName = $"crm-{hash}@localhost";
    }

    public string Name => "rabbitmq";
    public string Host => "127.0.0.1";
    public int Port { get; }
    public string Folder { get; }
    public string Username => "guest";
    public string Password => "guest";

    /// <summary><c>amqp://guest:guest@127.0.0.1:port/</c></summary>
    public Uri AmqpUri => new($"amqp://{Username}:{Password}@{Host}:{Port}/");

    /// <summary>Pid of the Erlang VM while the node runs.</summary>
    public int? ProcessId => _node is { HasExited: false } p ? p.Pid : null;

    public bool IsRunning => _node is { IsRunning: true };

    public Task WhenExited => _node?.Exited ?? Task.CompletedTask;

    /// <summary>The AMQP 0-9-1 handshake answered with Connection.Start within 3 s: the broker, not just its socket.</summary>
    public Task<bool> ProbeAsync(CancellationToken ct = default) => Readiness.AmqpHandshakeAsync(Port, ct);

    /// <summary>
    /// Starts the node again after it died (SIGKILL of beam.smp and its helpers, epmd included): same
    /// ports, node name and mnesia folder, so durable queues and their messages come back.
    /// </summary>
    public async Task RestartAsync(CancellationToken ct = default)
    {
        await _gate.WaitAsync(ct);
        try
        {
            if (IsRunning) return;
            _node?.Kill();
            _node = null;
            if (_epmd is not { IsRunning: true })
            {
                _epmd?.Kill();
                await StartEpmdAsync(ct);
            }
            try
            {
                await StartNodeAsync(ct);
            }
            catch
            {
                _node?.Kill();
                throw;
            }
        }
        finally { _gate.Release(); }
    }

    internal static async Task<RabbitMqServer> StartAsync(InfrastructureOptions options, ILogger logger, CancellationToken ct)
    {
        Binaries.RabbitMq(options.RabbitMqServerPath);
        Binaries.Epmd();
        var folder = Path.Combine(options.DataDirectory, "rabbitmq");
        Directory.CreateDirectory(folder);
        await Leftovers.StopAsync(folder, Posix.SIGTERM, ["beam", "epmd", "crm-watchdog"], logger);

        var portsFile = Path.Combine(folder, "ports");
        var saved = File.Exists(portsFile)
            ? File.ReadAllText(portsFile).Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(s => int.TryParse(s, out var v) ? v : 0).ToArray()
            : [];
        int? Saved(int i) => saved.Length > i && saved[i] > 0 ? saved[i] : null;
        var (port, distPort, epmdPort) = (Ports.GetFree(Saved(0)), Ports.GetFree(Saved(1)), Ports.GetFree(Saved(2)));
        File.WriteAllText(portsFile, FormattableString.Invariant($"{port} {distPort} {epmdPort}"));

        var home = Path.Combine(folder, "home");
        Directory.CreateDirectory(home);
        Directory.CreateDirectory(Path.Combine(folder, "mnesia"));
        Directory.CreateDirectory(Path.Combine(folder, "log"));
        File.WriteAllText(Path.Combine(folder, "enabled_plugins"), "[].\n");
        File.WriteAllText(Path.Combine(folder, "rabbitmq-env.conf"), "# empty: no settings from /etc/rabbitmq\n");
        File.WriteAllLines(Path.Combine(folder, "rabbitmq.conf"),
        [
            "# written by Crm.Launcher at each start",
            "log.console = true",
            "log.console.level = info",
            "log.file = false",
        ]);
        var cookie = Path.Combine(home, ".erlang.cookie");
        if (!File.Exists(cookie))
            File.WriteAllText(cookie, RandomNumberGenerator.GetString("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 20));
        await Commands.ChownAsync(folder, User, ct);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(cookie, UnixFileMode.UserRead); // Erlang refuses a cookie others can read

        var server = new RabbitMqServer(options, logger, folder, port, distPort, epmdPort);
        try
        {
            await server.StartEpmdAsync(ct);
            await server.StartNodeAsync(ct);
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
        return server;
    }

    /// <summary>Stops the broker (its ports close); the data and ports are kept for <see cref="StartAsync"/>.</summary>
    public async Task StopAsync()
    {
        await _gate.WaitAsync();
        try
        {
            if (_node is not null) await _node.DisposeAsync();
            _node = null;
        }
        finally { _gate.Release(); }
        _logger.LogDebug("RabbitMQ stopped");
    }

    /// <summary>Starts the broker again on the same ports with the same data; returns once AMQP answers.</summary>
    public Task StartAsync() => StartAsync(CancellationToken.None);

    public async Task StartAsync(CancellationToken ct)
    {
        await _gate.WaitAsync(ct);
        try
        {
            if (_node is { HasExited: false }) return;
            if (_epmd is not { IsRunning: true })
            {
                _epmd?.Kill();
                await StartEpmdAsync(ct);
            }
            await StartNodeAsync(ct);
        }
        finally { _gate.Release(); }
    }

    internal async Task DisposeAsync()
    {
        await StopAsync();
        if (_epmd is not null) await _epmd.DisposeAsync();
        _epmd = null;
    }

    /// <summary>Starts epmd and waits until it listens: a node that finds no epmd would start a daemon one.</summary>
    private async Task StartEpmdAsync(CancellationToken ct)
    {
        var epmd = _epmd = ChildProcess.Start(new ChildProcessOptions
        {
            Name = "epmd",
            FileName = Binaries.Epmd(),
            Arguments = ["-port", _epmdPort.ToString(CultureInfo.InvariantCulture), "-address", "127.0.0.1"],
            WorkingDirectory = Folder,
            LogFile = Path.Combine(Folder, "epmd.log"),
            RunAsUser = User,
            StopSignal = Posix.SIGTERM,
            StopTimeout = TimeSpan.FromSeconds(5),
            Logger = _logger,
            Environment = ErlangEnvironment(),
        });
        await epmd.WaitForPidAsync(ct);
        await Readiness.WaitAsync("epmd", epmd, TimeSpan.FromSeconds(10), token => Ports.AcceptsAsync(_epmdPort, token), ct);
    }

    private async Task StartNodeAsync(CancellationToken ct)
    {
        var env = ErlangEnvironment();
        env["RUNNING_UNDER_SYSTEMD"] = "true"; // makes rabbitmq-server exec the VM directly: SIGTERM stops the node cleanly
        env["RABBITMQ_NODENAME"] = _nodeName;
        env["RABBITMQ_NODE_IP_ADDRESS"] = "127.0.0.1";
        env["RABBITMQ_NODE_PORT"] = Port.ToString(CultureInfo.InvariantCulture);
        env["RABBITMQ_DIST_PORT"] = _distPort.ToString(CultureInfo.InvariantCulture);
        env["RABBITMQ_MNESIA_BASE"] = Path.Combine(Folder, "mnesia");
        env["RABBITMQ_LOG_BASE"] = Path.Combine(Folder, "log");
        env["RABBITMQ_LOGS"] = "-";
        env["RABBITMQ_ENABLED_PLUGINS_FILE"] = Path.Combine(Folder, "enabled_plugins");
        env["RABBITMQ_CONFIG_FILE"] = Path.Combine(Folder, "rabbitmq.conf");
        env["RABBITMQ_ADVANCED_CONFIG_FILE"] = Path.Combine(Folder, "advanced.config");
        env["RABBITMQ_CONF_ENV_FILE"] = Path.Combine(Folder, "rabbitmq-env.conf");
        env["ERL_CRASH_DUMP"] = Path.Combine(Folder, "log", "erl_crash.dump");

        var node = ChildProcess.Start(new ChildProcessOptions
        {
            Name = "rabbitmq",
            FileName = Binaries.RabbitMq(_options.RabbitMqServerPath),
            WorkingDirectory = Folder,
            LogFile = Path.Combine(Folder, "rabbitmq.log"),
            RunAsUser = User,
            StopSignal = Posix.SIGTERM,
            StopTimeout = _options.StopTimeout,
            Logger = _logger,
            Environment = env,
            OutputReceived = _options.OutputReceived is { } output ? line => output("rabbitmq", line) : null,
        });
        _node = node;
        await node.WaitForPidAsync(ct);
        Leftovers.Record(Folder, node, _epmd);
        await Readiness.WaitAsync("rabbitmq", node, _options.StartTimeout, token => Readiness.AmqpHandshakeAsync(Port, token), ct);
        _logger.LogDebug("RabbitMQ accepts AMQP connections on 127.0.0.1:{Port}", Port);
    }

    private Dictionary<string, string?> ErlangEnvironment() => new()
    {
        ["HOME"] = Path.Combine(Folder, "home"),
        ["ERL_EPMD_PORT"] = _epmdPort.ToString(CultureInfo.InvariantCulture),
        ["ERL_EPMD_ADDRESS"] = "127.0.0.1",
    };
}
