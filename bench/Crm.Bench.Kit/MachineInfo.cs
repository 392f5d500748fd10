using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Crm.Bench;

/// <summary>What the figures were measured on: written at the top of every results file.</summary>
public sealed class MachineInfo
{
    public required string Date { get; init; }
    public required string Commit { get; init; }
    public required int Cores { get; init; }
    public required string Memory { get; init; }
    public required string CpuModel { get; init; }
    public required string Os { get; init; }
    public required string Kernel { get; init; }
    public required string Runtime { get; init; }
    public required string Gc { get; init; }
    public Dictionary<string, string> Postgres { get; set; } = [];

    public static MachineInfo Collect(string repoRoot)
    {
        var commit = Run("git", repoRoot, "rev-parse", "--short", "HEAD") ?? "unknown";
        var dirty = Run("git", repoRoot, "status", "--porcelain");
        if (!string.IsNullOrWhiteSpace(dirty)) commit += " (with uncommitted changes)";
        var memKb = ReadFirst("/proc/meminfo", "MemTotal:")?.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1];
        return new MachineInfo
        {
            Date = DateTimeOffset.Now.ToString("yyyy-MM-dd HH:mm:ss zzz", System.Globalization.CultureInfo.InvariantCulture),
            Commit = commit,
            Cores = Environment.ProcessorCount,
            Memory = memKb is null ? "unknown" : $"{long.Parse(memKb, System.Globalization.CultureInfo.InvariantCulture) / 1024.0 / 1024.0:0.0} GiB",
            CpuModel = ReadFirst("/proc/cpuinfo", "model name")?.Split(':', 2)[1].Trim() ?? "unknown",
            Os = ReadFirst("/etc/os-release", "PRETTY_NAME=")?.Split('=', 2)[1].Trim('"') ?? RuntimeInformation.OSDescription,
            Kernel = File.Exists("/proc/sys/kernel/osrelease") ? File.ReadAllText("/proc/sys/kernel/osrelease").Trim() : "unknown",
            Runtime = RuntimeInformation.FrameworkDescription,
            Gc = System.Runtime.GCSettings.IsServerGC ? "server" : "workstation",
        };
    }

    private static string? ReadFirst(string file, string prefix)
    {
        try { return File.ReadLines(file).FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal)); }
        catch (IOException) { return null; }
    }

    private static string? Run(string file, string directory, params string[] args)
    {
        try
        {
            var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = directory };
            foreach (var a in args) info.ArgumentList.Add(a);
            using var p = Process.Start(info)!;
            var output = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            return p.ExitCode == 0 ? output.Trim() : null;
        }
        catch (Exception) { return null; }
    }
}
