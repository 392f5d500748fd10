using System.Globalization;
using System.Text;

namespace Crm.Bench.Tickets;

/// <summary>bench/RESULTS-tickets.md (also printed) and the raw JSON of a run.</summary>
public static class Report
{
    public const double PassTarget = 2.0;
    public const double AtRiskTarget = 2.0;
    public const double BreachLatencyTargetMs = 1000;
    public const double OpenTarget = 0.5;

    public static string Json(TicketsReport report) => ResultsText.Json(report);

    public static string Markdown(TicketsReport r)
    {
        var o = r.Options;
        var m = r.Machine;
        var s = new StringBuilder();
        s.AppendLine("# Tickets service benchmark (issue 9)");
        s.AppendLine();
        s.AppendLine("Written by `bench/run.sh tickets`; the raw numbers of each run are in `bench/out/tickets-<run>.json` (not committed).");
        s.AppendLine("Every ceiling is measured in the same run on the same Postgres server; the breach latency is held to its absolute 1 s target.");
        s.AppendLine();
        s.AppendLine("## Run");
        s.AppendLine();
        ResultsText.AppendMachine(s, m, r.TotalSeconds);
        s.AppendLine($"- {m.Runtime}, {m.Gc} GC; load generator and tickets service in one process (Release build), every call with the bench's admin token");
        ResultsText.AppendPostgres(s, m);
        s.AppendLine("- SLA configuration: a 24×7 calendar (`Tickets:Calendar` TimeZone UTC, WorkStart 00:00, WorkEnd 24:00, all seven days), " +
                     "so due times are wall-clock instants; the default SLA policies (urgent 30 min / 8 h, S5–S6 15 min / 4 h, … low 8 h / 45 h)");
        if (r.Seeding is { } seed)
            s.AppendLine($"- data: {seed.Tickets:N0} open tickets (new 40 %, acknowledged 20 %, in progress 30 %, waiting on the customer 10 %; " +
                         $"20,000 customers, one in ten S5/S6) written with binary COPY as the service writes them, every running target due 15 min or " +
                         $"more ahead, in {seed.Seconds:0.0} s + VACUUM ANALYZE {seed.VacuumSeconds:0.0} s; table {Mb(seed.TableBytes)}, " +
                         $"with indexes {Mb(seed.TotalBytes)}; checked through GetTicket ({seed.VerifiedTicket})");
        s.AppendLine($"- concurrency for OpenTicket: {o.Clients} async callers on {o.Connections} HTTP/2 connection(s), closed loop " +
                     $"{o.WarmupSeconds:0.#} s warm-up + {o.DurationSeconds:0.#} s; pgbench TPC-B -c {o.Clients} -j {Math.Min(o.PgbenchThreads, o.Clients)}, " +
                     $"scale {o.PgbenchScale}, a {Math.Max(1, (int)Math.Round(o.WarmupSeconds))} s warm-up run then -T {(int)Math.Round(o.DurationSeconds)}; " +
                     $"service log level {o.ServiceLogLevel}" + (o.ServiceArgs.Count > 0 ? "; extra service configuration: `" + string.Join(" ", o.ServiceArgs) + "`" : ""));
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
        if (r.Pass is { } pass)
        {
            // Detection alone (nothing due: what every pass pays to look at the 100,000) and detection with escalation of a backlog.
            var idle = pass.MedianIdleMs / pass.MedianScanMs;
            Row(s, $"breach-detection pass over {pass.TableRows:N0} open tickets, nothing due (median of {pass.Idle.Count})",
                Ms(pass.MedianIdleMs), $"plain scan {Ms(pass.MedianScanMs)}", X(idle), $"≤ {PassTarget:0} ×", Verdict(idle <= PassTarget));
            var ratio = pass.MedianPassMs / pass.MedianScanMs;
            Row(s, $"breach-detection pass, {o.Overdue:N0} overdue among them: each breached, escalated, SlaBreached written (median of {pass.Measured.Count})",
                Ms(pass.MedianPassMs), $"plain scan {Ms(pass.MedianScanMs)}", X(ratio), $"≤ {PassTarget:0} ×", Verdict(ratio <= PassTarget));
        }
        if (r.AtRisk is { } risk)
        {
            var ratio = risk.MedianCallMs / risk.MedianScanMs;
            Row(s, $"ListAtRisk RPC, due within {risk.WithinMinutes} min, first page of {risk.PageSize} (median of {risk.CallMs.Count})",
                Ms(risk.MedianCallMs), $"plain scan {Ms(risk.MedianScanMs)}", X(ratio), $"≤ {AtRiskTarget:0} ×", Verdict(ratio <= AtRiskTarget));
        }
        if (r.BreachLatency is { } lat)
        {
            var all = lat.Received == lat.Tickets;
            Row(s, $"SlaBreached published: due time → received, p99 ({lat.Received:N0} of {lat.Tickets:N0} arrived; scheduler every {lat.SchedulerInterval})",
                Ms(lat.DueToReceived.P99), "— (absolute)", "—", $"≤ {BreachLatencyTargetMs:N0} ms, all arrive",
                Verdict(all && lat.DueToReceived.P99 <= BreachLatencyTargetMs));
        }
        if (r.OpenTicket is { } open && r.PgbenchTpcb is { } tpcb)
        {
            var ratio = open.Throughput / tpcb.Tps;
            Row(s, $"OpenTicket throughput ({open.Clients} clients), median of {r.OpenTicketRounds.Count} rounds", Rate(open.Throughput, "calls/s"),
                $"pgbench TPC-B {Rate(tpcb.Tps, "tps")} (median of {r.PgbenchTpcbRounds.Count}, taking turns with it)",
                F(ratio, "0.00"), $"≥ {OpenTarget:0.0}", Verdict(ratio >= OpenTarget));
        }

        s.AppendLine();
        s.AppendLine("## Detail per phase");
        if (r.Pass is { } p)
        {
            s.AppendLine();
            s.AppendLine("**Breach detection** — `SlaScheduler.RunOnceAsync`, the class the hosted scheduler runs (its own timer parked; passes timed by the bench, " +
                         "wall time of the whole pass: breaches with escalation and SlaBreached outbox rows, near-breach marking, due care calls):");
            s.AppendLine();
            s.AppendLine($"- first pass after seeding (marks every target already within the 30 min near-breach window; not compared): {Ms(p.First.Ms)}, " +
                         $"{p.First.NearBreaches:N0} near-breaches, {p.First.Breaches} breaches");
            s.AppendLine($"- passes with nothing due: median {Ms(p.MedianIdleMs)} ({string.Join(", ", p.Idle.Select(x => Ms(x.Ms)))})");
            s.AppendLine($"- measured passes, each after {o.Overdue:N0} more tickets were written with their first response due 1–10 min ago: " +
                         string.Join("; ", p.Measured.Select(x => $"{Ms(x.Ms)} ({x.Breaches:N0} breached, {x.NearBreaches:N0} near)")));
            s.AppendLine("- JIT: " + (p.JitWarmUp is { } pj ? $"before the measured passes, unmeasured rounds (seed, pass, publish) until the JIT settled: {pj}" : "no rounds until the JIT settled (--jit-settle 0)") +
                         $"; during the measured passes: {string.Join(", ", p.Measured.Select(x => $"{x.Jit.Time.TotalMilliseconds:0} ms"))} in the JIT");
            s.AppendLine($"- per breach: {F(p.MedianPassMs * 1000 / o.Overdue, "0")} µs; CPU per breach over the measured passes: bench process " +
                $"{F(p.BenchUsPerBreach, "0")} µs, Postgres {F(p.PostgresUsPerBreach, "0")} µs");
            var (pubBench, pubPostgres, pubRabbit) = p.PublishingUsPerBreach;
            s.AppendLine($"- after each measured pass, its SlaBreached published by the outbox relay and received by a probe on the exchange before the " +
                $"next pass was seeded: {string.Join(", ", p.Measured.Select(x => Ms(x.Publishing?.Ms ?? 0)))} after the pass (median {Ms(p.MedianPublishedMs)}); " +
                $"CPU per breach for that: bench process {F(pubBench, "0")} µs, Postgres {F(pubPostgres, "0")} µs, RabbitMQ {F(pubRabbit, "0")} µs");
            s.AppendLine($"- ceiling: `SELECT count(*) FROM tickets WHERE state BETWEEN 1 AND 4 AND (<first response running and due> OR <resolution running and due>)` " +
                         $"with index scans off for the session, plan: {p.ScanPlan}; {string.Join(", ", p.ScanMs.Select(Ms))} (median {Ms(p.MedianScanMs)}; {p.ScanRows:N0} rows matched)");
        }
        if (r.AtRisk is { } a)
        {
            var calls = Latency.FromMicroseconds(a.CallMs.Select(x => (long)(x * 1000)).ToList());
            s.AppendLine();
            s.AppendLine($"**ListAtRisk** (within {a.WithinMinutes} min, page size {a.PageSize}, admin token): {a.CallMs.Count} calls after 3 warm-up calls, " +
                         $"p50 {Ms(calls.P50)}, p90 {Ms(calls.P90)}, max {Ms(calls.Max)}; first page {a.FirstPageRows} rows; all {a.AtRiskRows:N0} at-risk targets " +
                         $"in {a.Pages} pages took {Ms(a.AllPagesMs)}; the same plain scan measured after it: {string.Join(", ", a.ScanMs.Select(Ms))}");
        }
        if (r.OpenTicket is { } ot && r.PgbenchTpcb is { } pg)
        {
            s.AppendLine();
            s.AppendLine($"**OpenTicket** (unique idempotency key, a desk queue, one complaint in three; the RPC answers with the ticket it wrote): " +
                         $"{ot.Calls:N0} calls, {ot.Errors} errors, p50 {Ms(ot.Latency.P50)}, p90 {Ms(ot.Latency.P90)}, p99 {Ms(ot.Latency.P99)}, max {Ms(ot.Latency.Max)}; " +
                         $"busy cores {F(ot.Cpu.BusyCores, "0.00")}, Postgres {F(CpuUsage.PerOp(ot.Cpu.PostgresSeconds, ot.Calls), "0")} µs CPU per call, " +
                         $"bench process {F(CpuUsage.PerOp(ot.Cpu.BenchSeconds, ot.Calls), "0")} µs, RabbitMQ {F(CpuUsage.PerOp(ot.Cpu.RabbitMqSeconds, ot.Calls), "0")} µs" +
                         (ot.FirstError is null ? "" : $"; first error: {ot.FirstError}"));
            s.AppendLine($"- rounds (pgbench TPC-B, then OpenTicket): {string.Join("; ", r.PgbenchTpcbRounds.Zip(r.OpenTicketRounds, (t, o) => $"{Rate(t.Tps, "tps")} and {Rate(o.Throughput, "calls/s")} ({F(o.Throughput / t.Tps, "0.00")})"))}; the detail below is of the median rounds");
            s.AppendLine("- JIT: " + (r.OpenTicketJitWarmUp is { } jw ? $"before the warm-up, OpenTicket load until the JIT settled: {jw}" : "no load until the JIT settled (--jit-settle 0)") +
                         (r.OpenTicketJit is { } j ? $"; during the rounds: {j}" : ""));
            s.AppendLine($"- pgbench TPC-B (`{pg.CommandLine}`): {pg.Transactions:N0} transactions, {pg.Failed} failed, p50 {Ms(pg.Latency.P50)}, p99 {Ms(pg.Latency.P99)}; " +
                         $"busy cores {F(pg.Cpu.BusyCores, "0.00")}, Postgres {F(CpuUsage.PerOp(pg.Cpu.PostgresSeconds, pg.Transactions), "0")} µs CPU per transaction");
        }
        if (r.BreachLatency is { } l)
        {
            s.AppendLine();
            s.AppendLine($"**Breach latency** (real time, no fake clock): the service restarted with `Tickets:SchedulerInterval={l.SchedulerInterval}`; " +
                         $"{l.Tickets:N0} urgent tickets written with their first response due {l.LeadSeconds:0.#} s ahead and spread over {l.SpreadSeconds:0.#} s; " +
                         $"a plain RabbitMQ consumer on the `{BreachProbe.Exchange}` exchange stamps arrival with the wall clock. " +
                         $"{l.Received:N0} received, {l.Duplicates} duplicates.");
            s.AppendLine($"- due → received: p50 {Ms(l.DueToReceived.P50)}, p90 {Ms(l.DueToReceived.P90)}, p99 {Ms(l.DueToReceived.P99)}, max {Ms(l.DueToReceived.Max)}");
            s.AppendLine($"- due → detected by the scheduler (the event's DetectedAt): p50 {Ms(l.DueToDetected.P50)}, p99 {Ms(l.DueToDetected.P99)}, max {Ms(l.DueToDetected.Max)}");
            s.AppendLine($"- detected → received (commit, outbox relay, broker): p50 {Ms(l.DetectedToReceived.P50)}, p99 {Ms(l.DetectedToReceived.P99)}, max {Ms(l.DetectedToReceived.Max)}");
            s.AppendLine($"- busy cores during the phase {F(l.Cpu.BusyCores, "0.00")}");
        }
        if (r.Background.Count > 0)
        {
            s.AppendLine();
            s.AppendLine("**Other load before each phase** (processes this bench did not start):");
            s.AppendLine();
            foreach (var line in r.Background) s.AppendLine($"- {line}");
        }
        if (r.LeftoverProcesses.Count > 0)
        {
            s.AppendLine();
            s.AppendLine("**Processes left running after the run:** " + string.Join("; ", r.LeftoverProcesses));
        }
        return s.ToString();
    }

    private static void Row(StringBuilder s, params string[] cells) => s.AppendLine("| " + string.Join(" | ", cells) + " |");
    private static string Verdict(bool met) => met ? "met" : "**not met**";
    private static string Ms(double ms) => double.IsNaN(ms) ? "—" : ms >= 100 ? $"{ms:N0} ms" : $"{ms:0.00} ms";
    private static string X(double ratio) => F(ratio, "0.00") + " ×";
    private static string Rate(double value, string unit) => $"{value.ToString("N0", CultureInfo.InvariantCulture)} {unit}";
    private static string F(double value, string format) => double.IsNaN(value) ? "—" : value.ToString(format, CultureInfo.InvariantCulture);
    private static string Mb(long bytes) => $"{bytes / 1024.0 / 1024.0:0.0} MB";
}
