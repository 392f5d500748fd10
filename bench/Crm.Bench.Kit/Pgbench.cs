using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Crm.Launcher;

namespace Crm.Bench;

public sealed record PgbenchResult(
    string Name, string CommandLine, int Clients, int Threads, int Seconds, long Transactions, long Failed,
    double Tps, double ReportedLatencyAverageMs, Latency Latency, CpuUsage Cpu);

/// <summary>Runs /usr/bin/pgbench against the launcher's Postgres over TCP (like the service) and parses its figures.</summary>
public sealed partial class Pgbench(PostgresServer postgres, string database, string workDirectory, string executable = "/usr/bin/pgbench")
{
    public async Task InitializeAsync(int scale, CancellationToken ct)
    {
        var (code, output) = await RunAsync(["-i", "-s", scale.ToString(CultureInfo.InvariantCulture), "-q", database], ct);
        if (code != 0) throw new InvalidOperationException($"pgbench -i failed (exit {code}):\n{output}");
    }

    /// <summary>A short run whose figures are thrown away: warms the caches and the connection paths.</summary>
    public async Task WarmUpAsync(string[] mode, int clients, int threads, int seconds, CancellationToken ct)
    {
        var (code, output) = await RunAsync([.. mode, "-c", Str(clients), "-j", Str(threads), "-T", Str(seconds), database], ct);
        if (code != 0) throw new InvalidOperationException($"pgbench warm-up failed (exit {code}):\n{output}");
    }

    public async Task<PgbenchResult> RunAsync(string name, string[] mode, int clients, int threads, int seconds, CpuMeter cpu, CancellationToken ct)
    {
        var logDirectory = Path.Combine(workDirectory, "pgbench-" + name);
        if (Directory.Exists(logDirectory)) Directory.Delete(logDirectory, recursive: true);
        Directory.CreateDirectory(logDirectory);
        var prefix = Path.Combine(logDirectory, "tx");
        string[] args = [.. mode, "-c", Str(clients), "-j", Str(threads), "-T", Str(seconds), "-l", "--log-prefix", prefix, database];

        var before = cpu.Snapshot();
        var (code, output) = await RunAsync(args, ct);
        // pgbench's backends exit just after it does; their CPU reaches the postmaster's cutime once reaped.
        var ran = Stopwatch.GetElapsedTime(before.Timestamp);
        await Task.Delay(1000, ct);
        var usage = (cpu.Snapshot() - before) with { WallSeconds = ran.TotalSeconds };
        if (code != 0) throw new InvalidOperationException($"pgbench {string.Join(' ', args)} failed (exit {code}):\n{output}");

        var tps = Number(Tps(), output, "tps");
        var average = Number(LatencyAverage(), output, "latency average");
        var transactions = (long)Number(Processed(), output, "number of transactions actually processed");
        var failedMatch = Failed().Match(output);
        var failed = failedMatch.Success ? long.Parse(failedMatch.Groups[1].Value, CultureInfo.InvariantCulture) : 0;

        // Per-transaction log: client_id transaction_no time_us script_no epoch epoch_us [...]
        var micros = new List<long>((int)Math.Min(transactions + 1000, int.MaxValue / 2));
        foreach (var file in Directory.EnumerateFiles(logDirectory, "tx.*"))
        {
            foreach (var line in File.ReadLines(file))
            {
                var parts = line.Split(' ');
                if (parts.Length >= 3 && long.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var us))
                    micros.Add(us);
            }
        }
        Directory.Delete(logDirectory, recursive: true);

        var commandLine = "pgbench " + string.Join(' ', args.Where(a => !a.StartsWith(workDirectory, StringComparison.Ordinal) && a != "--log-prefix"));
        return new PgbenchResult(name, commandLine, clients, threads, seconds, transactions, failed, tps, average,
            Latency.FromMicroseconds(micros), usage);
    }

    private async Task<(int Code, string Output)> RunAsync(string[] args, CancellationToken ct)
    {
        var info = new ProcessStartInfo(executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workDirectory,
        };
        foreach (var a in (string[])["-h", postgres.Host, "-p", Str(postgres.Port), "-U", postgres.Username]) info.ArgumentList.Add(a);
        foreach (var a in args) info.ArgumentList.Add(a);
        info.Environment["PGPASSWORD"] = postgres.Password;
        info.Environment["PGCONNECT_TIMEOUT"] = "10";
        using var process = Process.Start(info) ?? throw new InvalidOperationException("pgbench did not start");
        var stdout = process.StandardOutput.ReadToEndAsync(ct);
        var stderr = process.StandardError.ReadToEndAsync(ct);
        try
        {
            await process.WaitForExitAsync(ct);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }
        return (process.ExitCode, await stdout + await stderr);
    }

    private static double Number(Regex regex, string output, string what)
    {
        var match = regex.Match(output);
        if (!match.Success) throw new InvalidOperationException($"No '{what}' in the pgbench output:\n{output}");
        return double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    private static string Str(int value) => value.ToString(CultureInfo.InvariantCulture);

    [GeneratedRegex(@"^tps = ([0-9.]+) \(without initial connection time\)", RegexOptions.Multiline)]
    private static partial Regex Tps();

    [GeneratedRegex(@"^latency average = ([0-9.]+) ms", RegexOptions.Multiline)]
    private static partial Regex LatencyAverage();

    [GeneratedRegex(@"^number of transactions actually processed: ([0-9]+)", RegexOptions.Multiline)]
    private static partial Regex Processed();

    [GeneratedRegex(@"^number of failed transactions: ([0-9]+)", RegexOptions.Multiline)]
    private static partial Regex Failed();
}
