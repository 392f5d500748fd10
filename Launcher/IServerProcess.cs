namespace Crm.Launcher;

/// <summary>
/// What a supervisor (the AppHost) needs of a server the Launcher started: whether it still runs,
/// whether it answers a real request, and a way to start it again on the same port with the same data.
/// </summary>
public interface IServerProcess
{
    /// <summary>postgres, redis or rabbitmq.</summary>
    string Name { get; }

    /// <summary>The port it listens on; the same after every restart.</summary>
    int Port { get; }

    /// <summary>Pid of the server's main process while it runs.</summary>
    int? ProcessId { get; }

    /// <summary>True while the main process is alive (read from /proc, so a SIGKILL is seen at once).</summary>
    bool IsRunning { get; }

    /// <summary>Completes when the current process exits (or at once when none runs).</summary>
    Task WhenExited { get; }

    /// <summary>One real request: <c>SELECT 1</c>, Redis <c>PING</c>, the AMQP handshake. False when it does not answer within 3 s.</summary>
    Task<bool> ProbeAsync(CancellationToken ct = default);

    /// <summary>
    /// Starts the server again after it died, on the same port with the same data folder, and returns
    /// once it accepts connections; does nothing while it runs. Throws <see cref="InfrastructureException"/>
    /// when it does not come up (the caller retries with back-off).
    /// </summary>
    Task RestartAsync(CancellationToken ct = default);
}
