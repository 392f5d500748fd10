using Microsoft.Extensions.Logging;

namespace Crm.Launcher.Internal;

/// <summary>
/// Servers left over from a crashed earlier run in a kept data folder. Each start records the pids
/// it launched in <c>&lt;server folder&gt;/.pids</c>; the next start stops any of them still alive.
/// </summary>
internal static class Leftovers
{
    private const string FileName = ".pids";

    public static void Record(string serverDirectory, params ChildProcess?[] processes)
    {
        var lines = processes.Where(p => p is not null)
            .SelectMany(p => new[] { p!.Pid, p.WatchdogPid })
            .Where(pid => pid is > 0)
            .Select(pid => pid!.Value.ToString(System.Globalization.CultureInfo.InvariantCulture));
        File.WriteAllLines(Path.Combine(serverDirectory, FileName), lines);
    }

    /// <summary>Stops (stop signal, then SIGKILL) every recorded process that still runs one of <paramref name="programs"/>.</summary>
    public static async Task StopAsync(string serverDirectory, int stopSignal, IReadOnlyList<string> programs, ILogger logger, IEnumerable<int>? extraPids = null)
    {
        var path = Path.Combine(serverDirectory, FileName);
        var pids = new List<int>(extraPids ?? []);
        if (File.Exists(path))
        {
            foreach (var line in File.ReadAllLines(path))
                if (int.TryParse(line, out var pid)) pids.Add(pid);
        }
        var alive = pids.Distinct()
            .Where(pid => pid != Environment.ProcessId && Posix.IsAlive(pid))
            .Where(pid => ProcessTable.CommandLine(pid) is { } cmd && programs.Any(p => cmd.Contains(p, StringComparison.Ordinal)))
            .ToList();
        if (alive.Count == 0) return;

        logger.LogWarning("Stopping leftover processes {Pids} from an earlier run in {Folder}", string.Join(", ", alive), serverDirectory);
        foreach (var pid in alive) Posix.Signal(pid, stopSignal);
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (alive.Any(Posix.IsAlive) && DateTime.UtcNow < deadline) await Task.Delay(100);
        foreach (var pid in alive.Where(Posix.IsAlive)) Posix.Signal(pid, Posix.SIGKILL);
        deadline = DateTime.UtcNow.AddSeconds(5);
        while (alive.Any(Posix.IsAlive) && DateTime.UtcNow < deadline) await Task.Delay(100);
    }
}
