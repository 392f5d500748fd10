using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Crm.Bench.Campaigns;

public sealed class CampaignsResult
{
    public required string RunId { get; init; }
    public required Options Options { get; init; }
    public required MachineInfo Machine { get; init; }
    public Generated? Data { get; set; }
    public string CeilingSql { get; set; } = "";
    public double CeilingWarmSeconds { get; set; }
    /// <summary>The median of <see cref="CeilingRuns"/>.</summary>
    public double CeilingSeconds { get; set; }
    /// <summary>The median of <see cref="RecomputeRuns"/>.</summary>
    public double RecomputeSeconds { get; set; }
    /// <summary>Each round's ceiling: the faster of <see cref="CeilingPlannedRuns"/> and <see cref="CeilingSerialRuns"/>.</summary>
    public List<double> CeilingRuns { get; } = [];
    public List<double> CeilingPlannedRuns { get; } = [];
    public List<double> CeilingSerialRuns { get; } = [];
    public List<double> RecomputeRuns { get; } = [];
    public long RecomputePeakRssKb { get; set; }
    [System.Text.Json.Serialization.JsonIgnore] public Crm.Campaigns.V1.RecomputeRun? Run { get; set; }
    public string RunSummary => Run?.ToString() ?? "";
    public string ReportRange { get; set; } = "";
    public double ReportWarmSeconds { get; set; }
    public double ReportSeconds { get; set; }
    public int ReportOrders { get; set; }
    public int ReportPeriods { get; set; }
    public double RollupFillSeconds { get; set; }
    public LagResult? Lag { get; set; }
    public SegmentFigures? Segments { get; set; }
    public LagResult? Trigger { get; set; }
    public string TriggerStatuses { get; set; } = "";
    public long LagPeakRssKb { get; set; }
    public long ServiceHwmKb { get; set; }
    public Dictionary<string, double> Quiet { get; } = [];
    public double TotalSeconds { get; set; }
}

/// <summary>bench/RESULTS-campaigns.md (machine, the figures against their targets, detail) and bench/out/campaigns-&lt;run&gt;.json.</summary>
public static class Report
{
    private const double Gib = 1024 * 1024; // KiB in a GiB

    public static async Task WriteAsync(CampaignsResult r, string markdownPath, string outDirectory)
    {
        var m = r.Machine;
        var c = CultureInfo.InvariantCulture;
        var s = new StringBuilder();
        s.AppendLine("# Campaign service benchmark (issues 10 and 11: analytics, segments and triggers at a million customers)").AppendLine();
        s.AppendLine(c, $"Run {r.RunId}, commit {m.Commit}, {m.Date}. Written by `bench/run.sh campaigns` (bench/Crm.Bench.Campaigns).").AppendLine();
        s.AppendLine("## Machine").AppendLine();
        s.AppendLine(c, $"- {m.Cores} cores ({m.CpuModel}), {m.Memory} memory, {m.Os}, kernel {m.Kernel}, {m.Runtime}, bench GC {m.Gc}");
        s.AppendLine("- Postgres: " + string.Join(", ", m.Postgres.Select(p => $"{p.Key}={p.Value}")));
        s.AppendLine("- Other load seen before each phase (cores, processes this bench did not start): " +
                     string.Join(", ", r.Quiet.Select(q => string.Create(c, $"{q.Key} {q.Value:0.00}"))));
        s.AppendLine();

        var d = r.Data!;
        var lag = r.Lag!;
        var recomputeRatio = r.RecomputeSeconds / r.CeilingSeconds;
        var reportRatio = r.ReportSeconds / r.CeilingSeconds;
        var peakKb = Math.Max(r.RecomputePeakRssKb, r.ServiceHwmKb);
        s.AppendLine("## Figures").AppendLine();
        s.AppendLine("| figure | measured | ceiling (same run) | ratio | target | verdict |");
        s.AppendLine("|---|---|---|---|---|---|");
        s.AppendLine(c, $"| full recompute (RFM, deciles, quadrants, ladder, churn, model fit), median of {r.RecomputeRuns.Count} | {r.RecomputeSeconds:0.00} s | aggregate scan {r.CeilingSeconds:0.00} s (median of {r.CeilingRuns.Count}) | {recomputeRatio:0.00} × | ≤ 3 × | {Verdict(recomputeRatio <= 3)} |");
        s.AppendLine(c, $"| sales report by month, 24 months | {r.ReportSeconds:0.00} s | aggregate scan {r.CeilingSeconds:0.00} s | {reportRatio:0.00} × | ≤ 1.5 × | {Verdict(reportRatio <= 1.5)} |");
        s.AppendLine(c, $"| OrderPaid → read model lag p99 at {lag.TargetRate:0}/s ({(r.Options.OrderPaidSingle ? "one per transaction" : "batched")}) | {lag.Lag.P99:0.0} ms | — | — | < 200 ms | {Verdict(lag.Lag.P99 < 200 && lag.Arrived == lag.Sent)} |");
        var seg = r.Segments!;
        var trigger = r.Trigger!;
        var snapshotTarget = 5.0 * seg.SnapshotMembers / 100_000; // 5 s for 100,000 members, in proportion at other sizes
        s.AppendLine(c, $"| segment count, four rules (issue 11) | {seg.CountSeconds:0.000} s | — | — | ≤ 1 s | {Verdict(seg.CountSeconds <= 1)} |");
        s.AppendLine(c, $"| segment snapshot of {seg.SnapshotMembers:N0} customers (issue 11) | {seg.SnapshotSeconds:0.00} s | — | — | ≤ 5 s per 100,000 ({snapshotTarget:0.00} s) | {Verdict(seg.SnapshotSeconds <= snapshotTarget)} |");
        s.AppendLine(c, $"| TierChanged → tier-welcome sent, p99 at {trigger.TargetRate:0}/s (issue 11) | {trigger.Lag.P99:0.0} ms | — | — | < 1 s | {Verdict(trigger.Lag.P99 < 1000 && trigger.Arrived == trigger.Sent)} |");
        s.AppendLine(c, $"| service memory, peak (VmHWM / sampled RSS) | {peakKb / 1024.0:0} MiB | — | — | < 1 GiB | {Verdict(peakKb < Gib)} |");
        s.AppendLine();

        s.AppendLine("## Detail").AppendLine();
        s.AppendLine(c, $"- Data (seed {r.Options.Seed}, generator bench/Crm.Bench.Campaigns/Generator.cs): {d.Customers:N0} customers, {d.Buyers:N0} with orders, " +
                        $"{d.Orders:N0} orders ({d.Refunded:N0} refunded, in full or part), {d.Lines:N0} lines, net revenue {d.NetRevenue:N0} yuan, three years to {d.End:yyyy-MM-dd}. " +
                        $"Binary COPY {d.LoadSeconds:0.0} s; keys, indexes, foreign key and VACUUM ANALYZE {d.IndexSeconds:0.0} s.");
        s.AppendLine(c, $"- Ceiling: `{r.CeilingSql}` read to the last row, work_mem {r.Options.WorkMem} (the recompute's query sets the same); median {r.CeilingSeconds:0.00} s of {Seconds(r.CeilingRuns)}, each the faster of the scan as planned ({Seconds(r.CeilingPlannedRuns)}) and without parallel workers ({Seconds(r.CeilingSerialRuns)}), one before each recompute (first, cache-warming run {r.CeilingWarmSeconds:0.00} s).");
        s.AppendLine(c, $"- Recompute: median {r.RecomputeSeconds:0.00} s of {Seconds(r.RecomputeRuns)}; RecomputeScores(refit_models) over gRPC to the service process, timed from the call to the GetRecomputeRun poll (every 20 ms) that sees it FINISHED, models fitted on a hash sample of {r.Run?.FitSample:N0} buyers, " +
                        $"{r.Run?.Customers:N0} customers scored in parallel chunks and written (binary COPY on several connections into a staging table, swapped in); peak RSS during them {r.RecomputePeakRssKb / 1024.0:0} MiB. " +
                        $"Model: r {r.Run?.Models?.R:0.000}, α {r.Run?.Models?.AlphaDays:0.0} days, a {r.Run?.Models?.A:0.000}, b {r.Run?.Models?.B:0.000}; p {r.Run?.Models?.P:0.00}, q {r.Run?.Models?.Q:0.00}, γ {r.Run?.Models?.Gamma:0.0}.");
        s.AppendLine(c, $"- Sales report: GetSalesReport by month {r.ReportRange} ({r.ReportPeriods} months, {r.ReportOrders:N0} orders), second call measured (first {r.ReportWarmSeconds:0.00} s).");
        s.AppendLine(c, $"- Lag: {lag.Sent:N0} OrderPaid published open loop at {lag.AchievedRate:0}/s through MassTransit (publish p50 {lag.Publish.P50:0.0} ms, p99 {lag.Publish.P99:0.0} ms; " +
                        $"{lag.PublishErrors} errors{(lag.FirstError is null ? "" : ": " + lag.FirstError)}); {lag.Arrived:N0} arrived; lag p50 {lag.Lag.P50:0.0} ms, p90 {lag.Lag.P90:0.0}, " +
                        $"p99 {lag.Lag.P99:0.0}, max {lag.Lag.Max:0.0} ms, measured by polling the read model every {lag.PollMilliseconds:0} ms (included in the figure); " +
                        $"machine busy {lag.Cpu.BusyCores:0.00} cores, Postgres {lag.Cpu.PostgresSeconds / lag.Cpu.WallSeconds:0.00}, RabbitMQ {lag.Cpu.RabbitMqSeconds / lag.Cpu.WallSeconds:0.00}, other {lag.Cpu.OtherCores:0.00}; CPU per event: {PerEvent(lag.Cpu, lag.Sent)}. Peak RSS meanwhile {r.LagPeakRssKb / 1024.0:0} MiB.");
        s.AppendLine(c, $"- Monthly roll-up (sales_customer_months) filled from the COPYed orders in {r.RollupFillSeconds:0.0} s before the phases (the service's consumers keep it afterwards).");
        s.AppendLine(c, $"- Segment count: CountSegment `{seg.CountRules}` → {seg.Count:N0}, second call measured (first {seg.CountWarmSeconds:0.000} s). " +
                        $"Snapshot: SnapshotSegment of `{seg.SnapshotRule}` → {seg.SnapshotMembers:N0} members.");
        s.AppendLine(c, $"- Trigger: {trigger.Sent:N0} TierChanged S1 → S2 for distinct customers with consent, open loop at {trigger.AchievedRate:0}/s; {trigger.Arrived:N0} sent; " +
                        $"p50 {trigger.Lag.P50:0.0} ms, p90 {trigger.Lag.P90:0.0}, p99 {trigger.Lag.P99:0.0}, max {trigger.Lag.Max:0.0} ms (polling campaign_deliveries every {trigger.PollMilliseconds:0} ms; deliveries at the end: {r.TriggerStatuses}); " +
                        $"machine busy {trigger.Cpu.BusyCores:0.00} cores. The dispatcher's GetCustomer goes to an in-bench stand-in that answers at once (the data is only in campaignsdb, " +
                        $"there is no customer database to serve it from), so the real customer service's time is not in this figure.");
        s.AppendLine(c, $"- Memory: the service runs as its own process (services/Campaigns/bin/Release/net10.0/Crm.Campaigns.dll, its GC settings as built); VmHWM at the end {r.ServiceHwmKb / 1024.0:0} MiB.");
        s.AppendLine(c, $"- Whole suite: {r.TotalSeconds / 60:0.0} min.");
        s.AppendLine().AppendLine("## Analysis").AppendLine().AppendLine("(to be written by whoever runs it at full size on a quiet machine)");

        Directory.CreateDirectory(Path.GetDirectoryName(markdownPath)!);
        await File.WriteAllTextAsync(markdownPath, s.ToString());
        Directory.CreateDirectory(outDirectory);
        var json = Path.Combine(outDirectory, $"campaigns-{r.RunId}.json");
        await File.WriteAllTextAsync(json, ResultsText.Json(r));
        BenchHost.Log($"Wrote {markdownPath} and {json}");
    }

    private static string Verdict(bool met) => met ? "met" : "**not met**";

    /// <summary>µs of CPU per event by process: the bench (publisher and poller), the service (and the launcher's idle watchdogs), Postgres, RabbitMQ.</summary>
    public static string PerEvent(CpuUsage cpu, int events) => FormattableString.Invariant(
        $"bench {CpuUsage.PerOp(cpu.BenchSeconds, events):0} µs, service {CpuUsage.PerOp(cpu.BenchChildrenSeconds, events):0}, Postgres {CpuUsage.PerOp(cpu.PostgresSeconds, events):0}, RabbitMQ {CpuUsage.PerOp(cpu.RabbitMqSeconds, events):0}");

    private static string Seconds(IEnumerable<double> values) =>
        string.Join(", ", values.Select(v => v.ToString("0.00", CultureInfo.InvariantCulture))) + " s";
}
