using System.Globalization;
using Npgsql;

namespace Crm.Bench.Partner;

/// <summary>
/// Postgres CPU split by who asked for it: each backend's CPU (/proc/PID/stat) grouped by its application_name (or
/// backend type), so the report shows the outbox relay's share of the stream's Postgres CPU beside the import's writes.
/// Only backends alive at both ends of a phase count; the pooled connections of the service and the relay are.
/// </summary>
public sealed record BackendShare(string Who, double Seconds);

public static class BackendCpu
{
    public sealed record Snapshot(IReadOnlyDictionary<int, (string Who, double Seconds)> Backends);

    public static async Task<Snapshot> TakeAsync(string connectionString, CancellationToken ct)
    {
        var backends = new Dictionary<int, (string, double)>();
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(ct);
        await using var command = new NpgsqlCommand(
            "SELECT pid, coalesce(nullif(application_name, ''), backend_type) FROM pg_stat_activity WHERE pid <> pg_backend_pid()", connection);
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            var pid = reader.GetInt32(0);
            if (ProcessSeconds(pid) is { } seconds) backends[pid] = (reader.GetString(1), seconds);
        }
        return new Snapshot(backends);
    }

    /// <summary>CPU seconds per application name between two snapshots, largest first.</summary>
    public static List<BackendShare> Between(Snapshot before, Snapshot after) =>
        after.Backends.Where(b => before.Backends.ContainsKey(b.Key))
            .GroupBy(b => b.Value.Who, b => b.Value.Seconds - before.Backends[b.Key].Seconds)
            .Select(g => new BackendShare(g.Key, g.Sum())).Where(g => g.Seconds > 0).OrderByDescending(g => g.Seconds).ToList();

    private static double? ProcessSeconds(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // Fields after the command name (which may hold spaces, so split after its closing parenthesis): utime is 14th, stime 15th.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return null; // not on Linux, or the backend is gone
        }
    }
}
