using Crm.Launcher.Internal;

namespace Crm.Launcher;

/// <summary>POSIX signals by number, and a way to send one (.NET has none besides Process.Kill).</summary>
public static class Signals
{
    public const int SIGINT = Posix.SIGINT;
    public const int SIGKILL = Posix.SIGKILL;
    public const int SIGTERM = Posix.SIGTERM;

    /// <summary>Sends <paramref name="signal"/> to <paramref name="pid"/>; false when there is no such process.</summary>
    public static bool Send(int pid, int signal) => Posix.Signal(pid, signal);

    /// <summary>True when the process exists and is not a zombie.</summary>
    public static bool IsAlive(int pid) => Posix.IsAlive(pid);
}
