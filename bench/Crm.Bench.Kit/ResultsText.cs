using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Crm.Bench;

/// <summary>What every suite's results file and raw JSON share: the JSON settings and the lines saying where it ran.</summary>
public static class ResultsText
{
    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static string Json<T>(T report) => JsonSerializer.Serialize(report, JsonOptions);

    /// <summary>"- date …" and "- machine …" of the Run section.</summary>
    public static void AppendMachine(StringBuilder s, MachineInfo m, double totalSeconds)
    {
        s.AppendLine($"- date: {m.Date}; commit: {m.Commit}; whole run {totalSeconds:0} s");
        s.AppendLine($"- machine: {m.Cores} cores ({m.CpuModel}), {m.Memory} memory, {m.Os}, kernel {m.Kernel}");
    }

    /// <summary>"- Postgres …": the settings that decide what a write costs (nothing when they were not read).</summary>
    public static void AppendPostgres(StringBuilder s, MachineInfo m)
    {
        if (m.Postgres.Count == 0) return;
        string Get(string key) => m.Postgres.TryGetValue(key, out var v) ? v : "?";
        s.AppendLine($"- Postgres {Get("server_version")} started by Crm.Launcher with Durable=true: fsync={Get("fsync")}, " +
                     $"synchronous_commit={Get("synchronous_commit")}, full_page_writes={Get("full_page_writes")}, " +
                     $"wal_sync_method={Get("wal_sync_method")}, shared_buffers={Get("shared_buffers")}, " +
                     $"max_connections={Get("max_connections")}; all clients over TCP on 127.0.0.1");
    }

    /// <summary>
    /// Prints the results, keeps the raw JSON at <paramref name="jsonPath"/> and, when asked to and the run succeeded, writes
    /// the results file: a failed run never replaces the last good figures.
    /// </summary>
    public static async Task SaveAsync(string markdown, string json, string jsonPath, string resultsPath, bool writeResults, bool succeeded)
    {
        Console.WriteLine();
        Console.WriteLine(markdown);
        Directory.CreateDirectory(Path.GetDirectoryName(jsonPath)!);
        await File.WriteAllTextAsync(jsonPath, json);
        if (writeResults && succeeded)
        {
            await File.WriteAllTextAsync(resultsPath, markdown);
            BenchHost.Log($"Wrote {resultsPath} and {jsonPath}");
        }
        else BenchHost.Log($"Wrote {jsonPath}" + (writeResults ? $" (not {resultsPath}: the run failed)" : ""));
    }
}
