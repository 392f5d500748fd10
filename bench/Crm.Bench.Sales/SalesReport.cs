using System.Globalization;
using System.Text;

namespace Crm.Bench.Sales;

/// <summary>bench/RESULTS-sales.md (also printed) and the raw JSON of a run.</summary>
public static class SalesReport
{
    public const double ReportTarget = 3.0;
    public const double MoveTarget = 0.5;

    public static string Json(SalesBenchReport report) => ResultsText.Json(report);

    public static string Markdown(SalesBenchReport r)
    {
        var o = r.Options;
        var m = r.Machine;
        var s = new StringBuilder();
        s.AppendLine("# Sales service benchmark");
        s.AppendLine();
        s.AppendLine("Written by `bench/run.sh sales`; the raw numbers of each run are in `bench/out/sales-<run>.json` (not committed).");
        s.AppendLine("Every figure is a ratio to a ceiling measured in the same run, on the same Postgres server with the same settings.");
        s.AppendLine();
        s.AppendLine("## Run");
        s.AppendLine();
        ResultsText.AppendMachine(s, m, r.TotalSeconds);
        s.AppendLine($"- {m.Runtime}, {m.Gc} GC; load generator and sales service in one process (Release build), every call with a bench admin token");
        ResultsText.AppendPostgres(s, m);
        if (r.Seed is { } seed)
            s.AppendLine($"- data: {seed.Opportunities:N0} opportunities over {seed.Owners} owners in {seed.Teams} teams, created over {o.HistoryDays} days, " +
                         $"{seed.HistoryRows:N0} stage-history rows, loaded with COPY in {seed.Seconds:0.0} s then VACUUM ANALYZE; by stage: " +
                         string.Join(", ", seed.ByStage.Select(kv => $"{kv.Key} {kv.Value:N0}")) + $"; {seed.Check}");
        s.AppendLine($"- reports: {o.WarmupRounds} warm-up + {o.Rounds} measured rounds, one call at a time; each round runs the scan and the four " +
                     "report RPCs once (owner drawn at random per round); the ratio compares medians");
        s.AppendLine($"- MoveStage: {o.Clients} clients on {o.Connections} HTTP/2 connection(s), closed loop {o.WarmupSeconds:0.#} s warm-up + {o.DurationSeconds:0.#} s; " +
                     $"pgbench TPC-B -c {o.Clients} -j {Math.Min(o.PgbenchThreads, o.Clients)}, scale {o.PgbenchScale}, a warm-up run then -T {Math.Max(1, (int)Math.Round(o.DurationSeconds))}" +
                     (r.MoveSetup is null ? "" : $"; {r.MoveSetup}"));
        if (o.ServiceArgs.Count > 0) s.AppendLine("- extra service configuration: `" + string.Join(" ", o.ServiceArgs) + "`");
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
        s.AppendLine("Report ratio = report RPC median latency / aggregate scan median latency (× slower; lower is better); " +
                     "throughput ratio = measured / ceiling (higher is better).");
        s.AppendLine();
        s.AppendLine("| figure | measured | ceiling (same run) | ratio | target | verdict |");
        s.AppendLine("|---|---:|---:|---:|---:|---|");
        if (r.Reports is { } rep)
        {
            foreach (var t in rep.Reports)
            {
                var ratio = t.Latency.P50 / rep.Scan.Latency.P50;
                Row(s, $"{t.Name} (median)", Ms(t.Latency.P50), $"aggregate scan {Ms(rep.Scan.Latency.P50)}", X(ratio), $"≤ {ReportTarget:0}×",
                    Verdict(ratio <= ReportTarget));
            }
        }
        var tpcb = r.PgbenchTpcb;
        if (r.MoveStage is { } mv && tpcb is not null)
        {
            var ratio = mv.Throughput / tpcb.Tps;
            Row(s, "MoveStage throughput", Rate(mv.Throughput, "calls/s"), $"pgbench TPC-B {Rate(tpcb.Tps, "tps")}", F(ratio, "0.00"),
                $"≥ {MoveTarget:0.0}", Verdict(ratio >= MoveTarget));
            Row(s, "MoveStage p50", Ms(mv.Latency.P50), $"pgbench TPC-B {Ms(tpcb.Latency.P50)}", X(mv.Latency.P50 / tpcb.Latency.P50), "", "info");
            Row(s, "MoveStage p99", Ms(mv.Latency.P99), $"pgbench TPC-B {Ms(tpcb.Latency.P99)}", X(mv.Latency.P99 / tpcb.Latency.P99), "", "info");
            Row(s, "MoveStage errors", $"{mv.Errors:N0} of {mv.Calls + mv.Errors:N0}", "—", "—", "0", Verdict(mv.Errors == 0));
        }

        s.AppendLine();
        s.AppendLine("## Latency detail");
        s.AppendLine();
        s.AppendLine("| phase | what | response | calls | mean | p50 | p90 | p99 | max |");
        s.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|");
        if (r.Reports is { } d)
            foreach (var t in d.Reports.Prepend(d.Scan))
                s.AppendLine($"| {t.Name} | {t.What} | {(t.ResponseBytes > 0 ? $"{t.ResponseBytes:N0} B" : "")} | {t.Latency.Count:N0} | {Ms(t.Latency.Mean)} | {Ms(t.Latency.P50)} | {Ms(t.Latency.P90)} | {Ms(t.Latency.P99)} | {Ms(t.Latency.Max)} |");
        if (tpcb is not null)
            s.AppendLine($"| `{tpcb.CommandLine}` | {Rate(tpcb.Tps, "tps")}, {tpcb.Failed} failed | | {tpcb.Transactions:N0} | {Ms(tpcb.Latency.Mean)} | " +
                         $"{Ms(tpcb.Latency.P50)} | {Ms(tpcb.Latency.P90)} | {Ms(tpcb.Latency.P99)} | {Ms(tpcb.Latency.Max)} |");
        if (r.MoveStage is { } l)
            s.AppendLine($"| MoveStage | {Rate(l.Throughput, "calls/s")}, {l.Errors} errors | | {l.Calls:N0} | {Ms(l.Latency.Mean)} | {Ms(l.Latency.P50)} | " +
                         $"{Ms(l.Latency.P90)} | {Ms(l.Latency.P99)} | {Ms(l.Latency.Max)} |");
        s.AppendLine();
        s.AppendLine("Report and scan latencies are per call as the client sees it (the RPCs include gRPC, authorization and the proto mapping); " +
                     "pgbench latencies are per transaction from its `-l` log.");

        s.AppendLine();
        s.AppendLine("## Where the CPU went");
        s.AppendLine();
        s.AppendLine($"| phase | busy cores (of {m.Cores}) | bench process (s) | Postgres (s) | RabbitMQ (s) | pgbench (s) | other processes (cores) |");
        s.AppendLine("|---|---:|---:|---:|---:|---:|---:|");
        if (r.Reports is { } c) Cpu(s, $"reports ({c.Rounds} rounds)", c.Cpu);
        if (tpcb is not null) Cpu(s, "pgbench TPC-B", tpcb.Cpu);
        if (r.MoveStage is { } mc) Cpu(s, "MoveStage", mc.Cpu);
        if (r.Background.Count > 0)
        {
            s.AppendLine();
            s.AppendLine("Background load just before each phase: " + string.Join("; ", r.Background) + ".");
        }
        if (r.LeftoverProcesses.Count > 0)
        {
            s.AppendLine();
            s.AppendLine("**Processes were left running after the run:** " + string.Join("; ", r.LeftoverProcesses));
        }
        return s.ToString();
    }

    private static void Row(StringBuilder s, string figure, string measured, string ceiling, string ratio, string target, string verdict) =>
        s.AppendLine($"| {figure} | {measured} | {ceiling} | {ratio} | {target} | {verdict} |");

    private static void Cpu(StringBuilder s, string phase, CpuUsage u) =>
        s.AppendLine($"| {phase} | {F(u.BusyCores, "0.00")} | {F(u.BenchSeconds, "0.0")} | {F(u.PostgresSeconds, "0.0")} | {F(u.RabbitMqSeconds, "0.0")} | " +
                     $"{F(u.BenchChildrenSeconds, "0.0")} | {F(u.OtherCores, "0.00")} |");

    private static string Verdict(bool met) => met ? "met" : "**not met**";
    private static string F(double v, string format) => double.IsFinite(v) ? v.ToString(format, CultureInfo.InvariantCulture) : "—";
    private static string X(double v) => double.IsFinite(v) ? v.ToString("0.00", CultureInfo.InvariantCulture) + "×" : "—";
    private static string Ms(double v) => double.IsFinite(v) ? (v < 10 ? v.ToString("0.00", CultureInfo.InvariantCulture) : v.ToString("0.0", CultureInfo.InvariantCulture)) + " ms" : "—";
    private static string Rate(double v, string unit) => double.IsFinite(v) ? v.ToString("N0", CultureInfo.InvariantCulture) + " " + unit : "—";
}
