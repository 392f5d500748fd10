using Crm.Launcher.Internal;

namespace Crm.Launcher;

/// <summary>Reads /proc: which live processes have a command line containing some text.</summary>
public static class ProcessTable
{
    public sealed record Entry(int Pid, string CommandLine);

    /// <summary>Live (non-zombie) processes, other than this one, whose command line contains <paramref name="fragment"/>.</summary>
    public static IReadOnlyList<Entry> Find(string fragment)
    {
        var found = new List<Entry>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid) || pid == Environment.ProcessId) continue;
            var commandLine = CommandLine(pid);
            if (commandLine is not null && commandLine.Contains(fragment, StringComparison.Ordinal) && Posix.IsAlive(pid))
                found.Add(new Entry(pid, commandLine));
        }
        return found;
    }

    /// <summary>The command line of a process with arguments separated by spaces, or null when it is gone.</summary>
    public static string? CommandLine(int pid)
    {
        try
        {
            var raw = File.ReadAllBytes($"/proc/{pid}/cmdline");
            return raw.Length == 0 ? null : System.Text.Encoding.UTF8.GetString(raw).TrimEnd('\0').Replace('\0', ' ');
        }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }
}
