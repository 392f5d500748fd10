using System.Globalization;
using System.Text;

namespace Crm.Bench.Partner;

public sealed class PartnerReport
{
    public required string RunId { get; init; }
    public required Options Options { get; init; }
    public required MachineInfo Machine { get; init; }
    public double SeedSeconds { get; set; }
    public CopyResult? Copy { get; set; }
    public FeedLagResult? FeedLag { get; set; }
    public ImportResult? Import { get; set; }
    /// <summary>Postgres CPU during the stream by backend (the relay's, the service's pool, ...).</summary>
    public List<BackendShare> ImportBackends { get; set; } = [];
    public long OrdersInDatabase { get; set; }
    /// <summary>
    /// OrderPaid events still waiting in the outbox when the stream ended (it was empty when the stream began): the relay's
    /// share of the CPU per order depends on how much of its work fell inside the stream.
    /// </summary>
    public long OutboxBacklogAfterImport { get; set; }
    public long OrderPaidEvents { get; set; }
    public List<string> Background { get; } = [];
    public string? Failure { get; set; }
    public List<string> LeftoverProcesses { get; set; } = [];
    public double TotalSeconds { get; set; }
}

/// <summary>bench/RESULTS-partner.md (also printed) and the raw JSON of a run.</summary>
public static class Report
{
    public const double ImportTarget = 0.25;
    public const double LagTargetMs = 100;

    public static string Json(PartnerReport report) => ResultsText.Json(report);

    public static string Markdown(PartnerReport r)
    {
        var o = r.Options;
        var m = r.Machine;
        var s = new StringBuilder();
        s.AppendLine("# Partner import and change-feed benchmark (issue 13)");
        s.AppendLine();
        s.AppendLine("Written by `bench/run.sh partner`; the raw numbers of each run are in `bench/out/partner-<run>.json` (not committed).");
        s.AppendLine("The ceiling is measured in the same run, on the same Postgres server with the same settings.");
        s.AppendLine();
        s.AppendLine("## Run");
        s.AppendLine();
        ResultsText.AppendMachine(s, m, r.TotalSeconds);
        s.AppendLine($"- {m.Runtime}, {m.Gc} GC; load generator and customer service in one process (Release build); the outbox relay publishes to RabbitMQ meanwhile (no consumer bound)");
        ResultsText.AppendPostgres(s, m);
        s.AppendLine($"- data: {o.Customers:N0} customers (and their ERP ids) seeded with COPY in {r.SeedSeconds:0.0} s; {o.Orders:N0} orders generated with seed {o.Seed} " +
                     $"(1-3 lines, {o.RefShare:P0} naming the customer by ERP id, the rest by the suite's id), one ImportOrders stream; " +
                     $"change-feed lag: orders recorded by {o.LagSource} at {o.LagRate:N0}/s for {o.LagSeconds:0} s after {o.LagWarmupSeconds:0} s of warm-up, one WatchChanges subscriber");
        foreach (var line in r.Background) s.AppendLine($"- quiet check: {line}");
        if (r.Failure is not null)
        {
            s.AppendLine();
            s.AppendLine("**The run failed:**");
            s.AppendLine();
            s.AppendLine("```");
            s.AppendLine(r.Failure);
            s.AppendLine("```");
        }

        s.AppendLine();
        s.AppendLine("## Results against the targets");
        s.AppendLine();
        s.AppendLine("| figure | measured | ceiling (same run) | ratio | target | verdict |");
        s.AppendLine("|---|---:|---:|---:|---:|---|");
        if (r.Import is { } import)
        {
            if (r.Copy is { } copy)
            {
                var ratio = import.OrdersPerSecond / copy.RowsPerSecond;
                Row(s, "streaming import throughput", $"{F(import.OrdersPerSecond, "N0")} orders/s", $"COPY {F(copy.RowsPerSecond, "N0")} rows/s",
                    F(ratio, "0.000"), $"≥ {ImportTarget:0.00}", Verdict(ratio >= ImportTarget));
            }
            var f = import.Flatness;
            Row(s, "service memory during the stream (RSS, max 2nd half / 1st half)", $"{Mb(f.RssSecondHalf)} / {Mb(f.RssFirstHalf)}", "—",
                F(f.RssRatio, "0.00"), $"≤ {MemoryVerdict.Tolerance:0.00} (flat)", Verdict(f.RssRatio <= MemoryVerdict.Tolerance));
            Row(s, "managed heap after GC during the stream (max 2nd half / 1st half)", $"{Mb(f.HeapSecondHalf)} / {Mb(f.HeapFirstHalf)}", "—",
                F(f.HeapRatio, "0.00"), $"≤ {MemoryVerdict.Tolerance:0.00} (flat)", Verdict(f.HeapRatio <= MemoryVerdict.Tolerance));
        }
        if (r.FeedLag is { } lag)
            Row(s, $"change-feed lag p99 at {lag.TargetRate:N0} events/s", Ms(lag.LagFromReturn.P99), "—", "—", $"< {LagTargetMs:0} ms",
                Verdict(lag.AllArrived && lag.LagFromReturn.P99 < LagTargetMs));

        if (r.Import is { } i)
        {
            s.AppendLine();
            s.AppendLine("## Import");
            s.AppendLine();
            s.AppendLine($"- {i.Sent:N0} items sent, {i.Created:N0} created, {i.Unchanged:N0} unchanged, {i.Rejected:N0} rejected in {i.Seconds:0.0} s; " +
                         $"statuses one per item in order: {(i.InOrder ? "yes" : "**no**")}" + (i.FirstRejection is null ? "" : $"; first rejection: {i.FirstRejection}"));
            s.AppendLine($"- in the database afterwards: {r.OrdersInDatabase:N0} orders, {r.OrderPaidEvents:N0} OrderPaid change events (one per order, the lag phase's included)");
            s.AppendLine($"- CPU during the stream: {Cpu(i.Cpu)}; per order {F(CpuUsage.PerOp(i.Cpu.BenchSeconds, i.Sent), "0")} µs in the bench process (client + service), " +
                         $"{F(CpuUsage.PerOp(i.Cpu.PostgresSeconds, i.Sent), "0")} µs in Postgres");
            s.AppendLine($"- outbox relay: {Math.Max(0, i.Created - r.OutboxBacklogAfterImport):N0} of the {i.Created:N0} OrderPaid events published during the stream, " +
                         $"{r.OutboxBacklogAfterImport:N0} still waiting when it ended");
            if (r.ImportBackends.Count > 0)
                s.AppendLine("- Postgres CPU during the stream by backend (application name), per order: " + string.Join(", ",
                    r.ImportBackends.Select(b => $"{b.Who} {F(CpuUsage.PerOp(b.Seconds, i.Sent), "0")} µs")));
            if (r.Copy is { } c)
                s.AppendLine($"- COPY ceiling: {c.Rows:N0} rows in {c.Seconds:0.0} s, CPU {Cpu(c.Cpu)}; per row {F(CpuUsage.PerOp(c.Cpu.PostgresSeconds, c.Rows), "0")} µs in Postgres");
            s.AppendLine($"- memory: RSS and managed heap sampled every second in the process that hosts both the service and the bench client " +
                         $"(items are generated lazily, the client keeps no queue); the most items in flight (sent, status not yet back) was {i.Flatness.MaxInFlight:N0}");
            s.AppendLine();
            s.AppendLine("| second | RSS | managed heap | heap after last GC | sent | answered | in flight |");
            s.AppendLine("|---:|---:|---:|---:|---:|---:|---:|");
            var step = Math.Max(1, i.Memory.Count / 20);
            for (var k = 0; k < i.Memory.Count; k += step)
            {
                var x = i.Memory[k];
                Row(s, F(x.Second, "0"), Mb(x.RssBytes), Mb(x.ManagedHeapBytes), Mb(x.HeapAfterLastGcBytes), x.Sent.ToString("N0", CultureInfo.InvariantCulture),
                    x.Answered.ToString("N0", CultureInfo.InvariantCulture), x.InFlight.ToString("N0", CultureInfo.InvariantCulture));
            }
        }
        if (r.FeedLag is { } l)
        {
            s.AppendLine();
            s.AppendLine("## Change-feed lag");
            s.AppendLine();
            s.AppendLine($"- {l.Sent:N0} orders by {l.Source} at {F(l.AchievedRate, "N0")}/s ({l.SendErrors} failed" + (l.FirstError is null ? "" : $", first: {l.FirstError}") +
                         $"), {l.Delivered:N0} delivered by WatchChanges, {l.Duplicates} twice, all arrived: {(l.AllArrived ? "yes" : "**no**")}; " +
                         $"{l.DeliveredBeforeReturn:N0} delivered before their call returned (counted as 0 ms)");
            s.AppendLine($"- CPU during the phase: {Cpu(l.Cpu)}");
            s.AppendLine();
            s.AppendLine("| measure | p50 | p90 | p99 | p99.9 | max |");
            s.AppendLine("|---|---:|---:|---:|---:|---:|");
            foreach (var (name, x) in new[] { ("delivery after the call returned", l.LagFromReturn), ("delivery after the call started", l.LagFromCallStart),
                         (l.Source == "RecordOrder" ? "RecordOrder call" : "import item: sent → status", l.RecordOrderLatency) })
                Row(s, name, Ms(x.P50), Ms(x.P90), Ms(x.P99), Ms(x.P999), Ms(x.Max));
        }
        if (r.LeftoverProcesses.Count > 0)
        {
            s.AppendLine();
            s.AppendLine("**Processes left running:** " + string.Join("; ", r.LeftoverProcesses));
        }
        return s.ToString();
    }

    private static string Cpu(CpuUsage u) =>
        $"{F(u.BusyCores, "0.00")} busy cores (bench process {F(u.BenchSeconds / u.WallSeconds, "0.00")}, Postgres {F(u.PostgresSeconds / u.WallSeconds, "0.00")}, " +
        $"RabbitMQ {F(u.RabbitMqSeconds / u.WallSeconds, "0.00")}, other processes {F(u.OtherCores, "0.00")})";

    private static void Row(StringBuilder s, params string[] cells) => s.AppendLine("| " + string.Join(" | ", cells) + " |");
    private static string Verdict(bool met) => met ? "met" : "**not met**";
    private static string Mb(long bytes) => $"{bytes / 1024.0 / 1024.0:0} MiB";
    private static string Ms(double v) => double.IsNaN(v) ? "—" : v < 10 ? $"{F(v, "0.00")} ms" : $"{F(v, "0.0")} ms";
    private static string F(double v, string format) => double.IsNaN(v) || double.IsInfinity(v) ? "—" : v.ToString(format, CultureInfo.InvariantCulture);
}
