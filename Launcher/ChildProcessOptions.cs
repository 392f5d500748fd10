using Microsoft.Extensions.Logging;

namespace Crm.Launcher;

/// <summary>How to run one child process under the watchdog (see <see cref="ChildProcess"/>).</summary>
public sealed class ChildProcessOptions
{
    /// <summary>Short name used in logs, e.g. postgres or customer.</summary>
    public required string Name { get; init; }
    public required string FileName { get; init; }
    public IReadOnlyList<string> Arguments { get; init; } = [];

    /// <summary>Variables added to the inherited environment; a null value removes the variable.</summary>
    public IReadOnlyDictionary<string, string?> Environment { get; init; } = new Dictionary<string, string?>();
    public string? WorkingDirectory { get; init; }

    /// <summary>File that receives stdout and stderr (appended; rotated past 10 MB).</summary>
    public string? LogFile { get; init; }

    /// <summary>Run as this user when we are root (postgres, rabbitmq); ignored otherwise.</summary>
    public string? RunAsUser { get; init; }

    /// <summary>Signal that asks the child to stop: SIGTERM (15) or SIGINT (2, Postgres' fast shutdown).</summary>
    public int StopSignal { get; init; } = 15;

    /// <summary>
    /// Signal the kernel sends the program when its watchdog dies (PR_SET_PDEATHSIG); default: <see cref="StopSignal"/>.
    /// </summary>
    public int? ParentDeathSignal { get; init; }

    /// <summary>How long a stop may take before the child is SIGKILLed.</summary>
    public TimeSpan StopTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Output lines kept in memory for <see cref="ChildProcess.RecentOutput"/>.</summary>
    public int KeptLines { get; init; } = 200;

    /// <summary>Receives every output line at debug level.</summary>
    public ILogger? Logger { get; init; }

    /// <summary>Called for every output line (stdout and stderr).</summary>
    public Action<string>? OutputReceived { get; init; }
}
