using System.Runtime.InteropServices;

namespace Crm.Launcher.Internal;

/// <summary>The few POSIX calls .NET does not expose: sending a signal, checking a pid.</summary>
internal static class Posix
{
    public const int SIGINT = 2;
    public const int SIGKILL = 9;
    public const int SIGTERM = 15;

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SysKill(int pid, int sig);

    public static bool Signal(int pid, int signal) => pid > 0 && SysKill(pid, signal) == 0;

    public static string SignalName(int signal) => signal switch
    {
        SIGINT => "INT",
        SIGKILL => "KILL",
        SIGTERM => "TERM",
        _ => signal.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    /// <summary>True when the process exists and is not a zombie.</summary>
    public static bool IsAlive(int pid)
    {
        if (pid <= 0) return false;
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var afterName = stat.LastIndexOf(')');
            return afterName > 0 && afterName + 2 < stat.Length && stat[afterName + 2] is not ('Z' or 'X');
        }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return true; }
    }

    public static bool IsRoot => Environment.IsPrivilegedProcess;
}
