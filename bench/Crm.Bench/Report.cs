using System.Globalization;
using System.Text;

namespace Crm.Bench;

/// <summary>bench/RESULTS.md (also printed) and the raw JSON of a run.</summary>
public static class Report
{
    public const double GetTarget = 0.6;
    public const double RecordTarget = 0.5;
    public const double LagTargetMs = 200;
    public const double EarnTarget = 0.5;

    public static string Json(BenchReport report) => ResultsText.Json(report);

    public static string Markdown(BenchReport r)
    {
        var o = r.Options;
        var m = r.Machine;
        var s = new StringBuilder();
        s.AppendLine("# Customer and loyalty service benchmark");
        s.AppendLine();
        s.AppendLine("Written by `bench/run.sh` (`./crm bench`); the raw numbers of each run are in `bench/out/` (not committed).");
        s.AppendLine("Ceilings are measured in the same run, on the same Postgres server with the same settings, at the same concurrency.");
        s.AppendLine();
        s.AppendLine("## Run");
        s.AppendLine();
        ResultsText.AppendMachine(s, m, r.TotalSeconds);
        s.AppendLine($"- {m.Runtime}, {m.Gc} GC; load generator, customer service, loyalty service (started for the earn and redeem phases only) and echo service in one process (Release build)");
        ResultsText.AppendPostgres(s, m);
        s.AppendLine($"- concurrency: {o.Clients} clients everywhere (gRPC: {o.Clients} async callers on {o.Connections} HTTP/2 connection(s); " +
                     $"pgbench: -c {o.Clients} -j {Math.Min(o.PgbenchThreads, o.Clients)}); closed loops {o.WarmupSeconds:0.#} s warm-up + {o.DurationSeconds:0.#} s measured; " +
                     $"pgbench a {Math.Max(1, (int)Math.Round(o.WarmupSeconds))} s warm-up run, then -T {(int)Math.Round(o.DurationSeconds)}, scale {o.PgbenchScale}");
        s.AppendLine($"- data: {o.Customers:N0} customers seeded with COPY; GetCustomer on random seeded ids; RecordOrder with unique external ids " +
                     "(one line, one outbox row each); service log level " + o.ServiceLogLevel +
                     (o.ServiceArgs.Count > 0 ? "; extra service configuration: `" + string.Join(" ", o.ServiceArgs) + "`" : "") +
                     (o.DbExtra is null ? "" : $"; connection string + `{o.DbExtra}`"));
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
        s.AppendLine("Throughput ratio = measured / ceiling (higher is better); latency ratio = measured / ceiling (× slower).");
        s.AppendLine();
        s.AppendLine("| figure | measured | ceiling (same run) | ratio | target | verdict |");
        s.AppendLine("|---|---:|---:|---:|---:|---|");
        var sel = r.PgbenchSelect;
        var tpcb = r.PgbenchTpcb;
        var echo = r.Echo;
        if (r.GetCustomer is { } get)
        {
            if (sel is not null)
            {
                var ratio = get.Throughput / sel.Tps;
                Row(s, "GetCustomer throughput", Rate(get.Throughput, "calls/s"), $"pgbench -S {Rate(sel.Tps, "tps")}", F(ratio, "0.00"),
                    $"≥ {GetTarget:0.0}", Verdict(ratio >= GetTarget));
                CapacityRow(s, "GetCustomer", get.Calls, get.Cpu, "pgbench -S", sel.Tps * sel.Seconds, sel.Cpu, m.Cores);
                Row(s, "GetCustomer p50", Ms(get.Latency.P50), $"pgbench -S {Ms(sel.Latency.P50)}", X(get.Latency.P50 / sel.Latency.P50), "", "");
                Row(s, "GetCustomer p99", Ms(get.Latency.P99), $"pgbench -S {Ms(sel.Latency.P99)}", X(get.Latency.P99 / sel.Latency.P99), "", "");
            }
            if (echo is not null)
            {
                Row(s, "GetCustomer throughput vs RPC stack", Rate(get.Throughput, "calls/s"), $"gRPC echo {Rate(echo.Throughput, "calls/s")}",
                    F(get.Throughput / echo.Throughput, "0.00"), "", "info");
                Row(s, "GetCustomer p50 / p99 vs RPC stack", $"{Ms(get.Latency.P50)} / {Ms(get.Latency.P99)}",
                    $"gRPC echo {Ms(echo.Latency.P50)} / {Ms(echo.Latency.P99)}",
                    $"{X(get.Latency.P50 / echo.Latency.P50)} / {X(get.Latency.P99 / echo.Latency.P99)}", "", "info");
            }
        }
        if (r.EchoAuth is { } secured && echo is not null)
        {
            // Per-call CPU the security pipeline adds (both echo phases send the same token; only its checking differs).
            var extra = CpuUsage.PerOp(secured.Cpu.BenchSeconds, secured.Calls) - CpuUsage.PerOp(echo.Cpu.BenchSeconds, echo.Calls);
            Row(s, "Authentication + rate limiter + role check (echo behind them vs bare echo)", Rate(secured.Throughput, "calls/s"),
                $"gRPC echo {Rate(echo.Throughput, "calls/s")}", F(secured.Throughput / echo.Throughput, "0.00"), "", "info");
            // On a CPU-bound machine a call's throughput falls by the share of its CPU the pipeline takes.
            foreach (var (name, phase) in new[] { ("GetCustomer", r.GetCustomer), ("RecordOrder", r.RecordOrder) })
            {
                if (phase is null) continue;
                var total = CpuUsage.PerOp(phase.Cpu.BenchSeconds + phase.Cpu.PostgresSeconds + phase.Cpu.RabbitMqSeconds + phase.Cpu.RedisSeconds, phase.Calls);
                Row(s, $"{name}: share of its CPU spent on authentication and authorization (≈ its throughput cost)",
                    $"{extra:0} µs of {total:0} µs per call", "—", F(extra / total, "P1"), "< 10 %", Verdict(extra / total < 0.10));
            }
        }
        if (r.RecordOrder is { } rec)
        {
            if (tpcb is not null)
            {
                var ratio = rec.Throughput / tpcb.Tps;
                Row(s, "RecordOrder throughput", Rate(rec.Throughput, "calls/s"), $"pgbench TPC-B {Rate(tpcb.Tps, "tps")}", F(ratio, "0.00"),
                    $"≥ {RecordTarget:0.0}", Verdict(ratio >= RecordTarget));
                CapacityRow(s, "RecordOrder", rec.Calls, rec.Cpu, "pgbench TPC-B", tpcb.Tps * tpcb.Seconds, tpcb.Cpu, m.Cores);
                Row(s, "RecordOrder p50", Ms(rec.Latency.P50), $"pgbench TPC-B {Ms(tpcb.Latency.P50)}", X(rec.Latency.P50 / tpcb.Latency.P50), "", "");
                Row(s, "RecordOrder p99", Ms(rec.Latency.P99), $"pgbench TPC-B {Ms(tpcb.Latency.P99)}", X(rec.Latency.P99 / tpcb.Latency.P99), "", "");
            }
            if (echo is not null)
                Row(s, "RecordOrder throughput vs RPC stack", Rate(rec.Throughput, "calls/s"), $"gRPC echo {Rate(echo.Throughput, "calls/s")}",
                    F(rec.Throughput / echo.Throughput, "0.00"), "", "info");
        }
        if (r.EventLag is { } lag)
        {
            var keptPace = lag.AchievedRate >= 0.95 * lag.TargetRate && lag.SendErrors == 0;
            var met = lag.LagFromReturn.P99 < LagTargetMs && lag.AllArrived && keptPace;
            Row(s, $"Event lag p99 at {lag.TargetRate:0} orders/s (RecordOrder returned → consumer has it)", Ms(lag.LagFromReturn.P99), "—", "—",
                $"< {LagTargetMs:0} ms, all arrive", Verdict(met));
            Row(s, "Event lag p50 / max", $"{Ms(lag.LagFromReturn.P50)} / {Ms(lag.LagFromReturn.Max)}", "—", "—", "", "");
            Row(s, "Event lag p99 from the call's start (upper bound)", Ms(lag.LagFromCallStart.P99), "—", "—", "", "info");
            Row(s, "Events arrived", $"{lag.Received:N0} of {lag.Sent:N0} sent ({lag.SendErrors} send errors, {lag.Duplicates} duplicates)", "—", "—",
                "all", Verdict(lag.AllArrived));
            Row(s, "Paced rate achieved", Rate(lag.AchievedRate, "orders/s"), "—", "—", $"≥ {0.95 * lag.TargetRate:0}", Verdict(keptPace));
        }

        if (r.Earn is { } earn)
        {
            var ratio = tpcb is null ? double.NaN : earn.EarnRate / tpcb.Tps;
            Row(s, "Points earned from OrderPaid, end to end (first RecordOrder → last order's ledger entry committed in loyalty)", Rate(earn.EarnRate, "orders/s"),
                tpcb is null ? "—" : $"pgbench TPC-B {Rate(tpcb.Tps, "tps")}", F(ratio, "0.00"), $"≥ {EarnTarget:0.0}, all earn",
                Verdict(ratio >= EarnTarget && earn.AllEarned));
            Row(s, "Earned while RecordOrder was running (ledger rows ÷ send window)", Rate(earn.EarnedDuringSend, "orders/s"),
                tpcb is null ? "—" : $"pgbench TPC-B {Rate(tpcb.Tps, "tps")}", F(tpcb is null ? double.NaN : earn.EarnedDuringSend / tpcb.Tps, "0.00"), "", "info");
            Row(s, "RecordOrder during the earn phase (loyalty consuming meanwhile)", Rate(earn.RecordOrderRate, "calls/s"),
                tpcb is null ? "—" : $"pgbench TPC-B {Rate(tpcb.Tps, "tps")}", F(tpcb is null ? double.NaN : earn.RecordOrderRate / tpcb.Tps, "0.00"), "", "info");
            Row(s, "Orders earned", $"{earn.OrdersEarned:N0} of {earn.OrdersSent:N0} recorded ({earn.SendErrors} errors); backlog drained {earn.DrainSeconds:0.0} s after the last call",
                "—", "—", "all", Verdict(earn.AllEarned));
            Row(s, "Earning lag p50 / p99 (RecordOrder returned → ledger entry created_at)", $"{Ms(earn.LagFromReturn.P50)} / {Ms(earn.LagFromReturn.P99)}",
                "—", "—", "", "info");
        }
        if (r.Redeem is { } red)
        {
            if (tpcb is not null)
            {
                Row(s, "Redeem throughput", Rate(red.Throughput, "calls/s"), $"pgbench TPC-B {Rate(tpcb.Tps, "tps")}", F(red.Throughput / tpcb.Tps, "0.00"), "", "info");
                CapacityRow(s, "Redeem", red.Calls, red.Cpu, "pgbench TPC-B", tpcb.Tps * tpcb.Seconds, tpcb.Cpu, m.Cores);
                Row(s, "Redeem p50", Ms(red.Latency.P50), $"pgbench TPC-B {Ms(tpcb.Latency.P50)}", X(red.Latency.P50 / tpcb.Latency.P50), "", "info");
                Row(s, "Redeem p99", Ms(red.Latency.P99), $"pgbench TPC-B {Ms(tpcb.Latency.P99)}", X(red.Latency.P99 / tpcb.Latency.P99), "", "info");
            }
            Row(s, "Redeem errors", $"{red.Errors:N0} of {red.Calls + red.Errors:N0}", "—", "—", "0", Verdict(red.Errors == 0));
        }

        s.AppendLine();
        s.AppendLine("## Latency and throughput detail");
        s.AppendLine();
        s.AppendLine("| phase | ops/s | ops | errors | mean | p50 | p90 | p99 | p99.9 | max |");
        s.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        if (sel is not null) Detail(s, $"`{sel.CommandLine}`", sel.Tps, sel.Transactions, sel.Failed, sel.Latency);
        if (echo is not null) Detail(s, "gRPC echo (bare Kestrel + Grpc.AspNetCore)", echo.Throughput, echo.Calls, echo.Errors, echo.Latency);
        if (r.EchoAuth is { } sec) Detail(s, "gRPC echo behind authentication, rate limiter and role check", sec.Throughput, sec.Calls, sec.Errors, sec.Latency);
        if (r.GetCustomer is { } g) Detail(s, "GetCustomer", g.Throughput, g.Calls, g.Errors, g.Latency);
        if (tpcb is not null) Detail(s, $"`{tpcb.CommandLine}`", tpcb.Tps, tpcb.Transactions, tpcb.Failed, tpcb.Latency);
        if (r.RecordOrder is { } ro) Detail(s, "RecordOrder", ro.Throughput, ro.Calls, ro.Errors, ro.Latency);
        if (r.EventLag is { } el) Detail(s, $"RecordOrder paced at {el.TargetRate:0}/s (lag phase)", el.AchievedRate, el.Sent, el.SendErrors, el.RecordOrderLatency);
        if (r.Earn is { } ea)
        {
            Detail(s, "RecordOrder (earn phase, loyalty consuming)", ea.RecordOrderRate, ea.OrdersSent, ea.SendErrors, ea.RecordOrderLatency);
            Detail(s, "earning lag (RecordOrder returned → ledger entry)", ea.EarnRate, ea.OrdersEarned, ea.OrdersSent - ea.OrdersEarned, ea.LagFromReturn);
        }
        if (r.Redeem is { } rd) Detail(s, "Redeem", rd.Throughput, rd.Calls, rd.Errors, rd.Latency);
        s.AppendLine();
        s.AppendLine("pgbench latencies are per transaction from its `-l` log; gRPC latencies are per call as the client sees it.");

        s.AppendLine();
        s.AppendLine("## Where the CPU went");
        s.AppendLine();
        s.AppendLine("CPU time over each measured window, from /proc, as microseconds of CPU per operation. " +
                     "\"bench process\" is the load generator *and* the in-process services (echo or customer) together; " +
                     "\"pgbench\" is pgbench's own client CPU; total is everything this bench started (Redis included); busy cores is the whole " +
                     "machine's average and \"other processes\" is CPU used meanwhile by processes the bench did not start (noise on a shared machine).");
        s.AppendLine();
        s.AppendLine($"| phase | ops/s | busy cores (of {m.Cores}) | bench process µs/op | pgbench µs/op | Postgres µs/op | RabbitMQ µs/op | total µs/op | other processes (cores) |");
        s.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        if (sel is not null) Cpu(s, "pgbench -S", sel.Tps * sel.Seconds, sel.Tps, sel.Cpu);
        if (echo is not null) Cpu(s, "gRPC echo", echo.Calls, echo.Throughput, echo.Cpu);
        if (r.GetCustomer is { } g2) Cpu(s, "GetCustomer", g2.Calls, g2.Throughput, g2.Cpu);
        if (tpcb is not null) Cpu(s, "pgbench TPC-B", tpcb.Tps * tpcb.Seconds, tpcb.Tps, tpcb.Cpu);
        if (r.RecordOrder is { } r2) Cpu(s, "RecordOrder (relay publishing meanwhile)", r2.Calls, r2.Throughput, r2.Cpu);
        if (r.EventLag is { } l2) Cpu(s, $"RecordOrder paced at {l2.TargetRate:0}/s + relay + consumer", l2.Sent, l2.Sent / Math.Max(l2.Cpu.WallSeconds, 1e-9), l2.Cpu);
        if (r.Earn is { } ec) Cpu(s, "earn: RecordOrder + relay + loyalty consumer (until drained)", ec.OrdersEarned, ec.OrdersEarned / Math.Max(ec.Cpu.WallSeconds, 1e-9), ec.Cpu);
        if (r.Redeem is { } rc) Cpu(s, "Redeem", rc.Calls, rc.Throughput, rc.Cpu);
        if (r.EventLag is { PerSecond.Count: > 0 } paced)
        {
            s.AppendLine();
            s.AppendLine($"Paced phase second by second (by call start; ms): " + string.Join("; ", paced.PerSecond.Select(p =>
                $"s{p.Second}: {p.Calls} calls, call p50 {F(p.CallP50, "0")} max {F(p.CallMax, "0")}, lag p50 {F(p.LagP50, "0")} max {F(p.LagMax, "0")}")) + ".");
        }
        if (r.Earn is { EarnedPerSecond.Count: > 0 } eps)
        {
            s.AppendLine();
            s.AppendLine($"Earn phase, orders earned by the loyalty service second by second from the first RecordOrder (RecordOrder ran for the first {eps.SendSeconds:0.0} s): " +
                         string.Join(", ", eps.EarnedPerSecond) + ".");
        }
        if (r.RedeemSetup is { } setup)
        {
            s.AppendLine();
            s.AppendLine($"Redeem phase: {setup}. Each redemption locks the member's account row and updates the reward's row (stock, even when unlimited), " +
                         "so redemptions of one reward serialize on that row until commit; spreading over several rewards keeps that from being the limit.");
        }
        if (r.OutboxDrain is { } d)
        {
            s.AppendLine();
            s.AppendLine($"Outbox after the RecordOrder closed loop: {d.BacklogRows:N0} rows were still unsent when it ended; the relay drained them in " +
                         $"{d.DrainSeconds:0.00} s" + (d.BacklogRows > 0 ? $" (≈ {d.RelayRate:N0} messages/s)" : "") +
                         (d.LeftRows > 0 ? $", {d.LeftRows:N0} left after the 120 s limit" : "") + ".");
        }

        s.AppendLine();
        s.AppendLine("## Notes");
        s.AppendLine();
        foreach (var note in Notes(r)) s.AppendLine("- " + note);
        if (r.AnalysisFile is { } analysis && File.Exists(analysis))
        {
            s.AppendLine();
            s.AppendLine(File.ReadAllText(analysis).TrimEnd());
        }
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

    /// <summary>Observations that follow from this run's own numbers.</summary>
    private static IEnumerable<string> Notes(BenchReport r)
    {
        var cores = r.Machine.Cores;
        if (r.EventLag is not null)
            yield return "Event lag is measured from the moment the RecordOrder call returned to the client (the transaction had committed before " +
                         "the service answered, so this slightly understates commit → consumer) and, as an upper bound, from the moment the call " +
                         $"started. {r.EventLag.ArrivedBeforeReturn:N0} events reached the consumer before their RecordOrder response reached the client.";
        var noisy = Phases(r).Where(p => p.Cpu.OtherCores >= 0.1).ToList();
        if (noisy.Count > 0)
            yield return "**Shared machine:** other processes (not started by this bench) used CPU during " +
                         string.Join(", ", noisy.Select(p => $"{p.Name} ({p.Cpu.OtherCores:0.00} cores)")) +
                         ": those figures are lower than a quiet machine would give, and ratios that mix a noisy phase with a quiet one are skewed.";
        foreach (var (name, ops, cpu) in Phases(r))
        {
            var ours = cpu.MachineBusySeconds - cpu.OtherSeconds;
            if (cpu.BusyCores >= 0.9 * cores)
                yield return $"{name}: the machine was CPU-bound ({cpu.BusyCores:0.00} of {cores} cores busy), " +
                             $"{CpuUsage.PerOp(ours, ops):0} µs of CPU per operation in all → at most ≈ {cores * 1e6 / CpuUsage.PerOp(ours, ops):N0} ops/s on {cores} cores.";
            else
                yield return $"{name}: {cpu.BusyCores:0.00} of {cores} cores busy — not CPU-bound; waiting (I/O, fsync, locks or round trips) limits it.";
        }
        if (r.GetCustomer is { } get && r.PgbenchSelect is { } sel)
        {
            var svc = CpuUsage.PerOp(get.Cpu.BenchSeconds, get.Calls);
            var pgSvc = CpuUsage.PerOp(get.Cpu.PostgresSeconds, get.Calls);
            var pgSel = CpuUsage.PerOp(sel.Cpu.PostgresSeconds, sel.Tps * sel.Seconds);
            var client = CpuUsage.PerOp(sel.Cpu.BenchChildrenSeconds, sel.Tps * sel.Seconds);
            yield return $"GetCustomer costs {svc:0} µs of CPU per call in the bench process (gRPC client + Kestrel/gRPC server + service + Npgsql) " +
                         $"against {client:0} µs per transaction for the pgbench client; Postgres spends {pgSvc:0} µs per GetCustomer against " +
                         $"{pgSel:0} µs per pgbench -S query. On a shared {cores}-core machine the .NET side's CPU is taken from Postgres.";
            if (r.Echo is { } echo)
            {
                var rpc = CpuUsage.PerOp(echo.Cpu.BenchSeconds, echo.Calls);
                yield return $"The bare gRPC round trip (client + server, same process) costs {rpc:0} µs of CPU per call ({echo.Throughput:N0} calls/s alone): " +
                             $"{rpc / svc:P0} of GetCustomer's bench-process CPU is the RPC stack before any service code or database access.";
            }
        }
        if (r.RecordOrder is { } rec && r.PgbenchTpcb is { } tpcb)
        {
            yield return $"RecordOrder costs {CpuUsage.PerOp(rec.Cpu.BenchSeconds, rec.Calls):0} µs of CPU per call in the bench process and " +
                         $"{CpuUsage.PerOp(rec.Cpu.PostgresSeconds, rec.Calls):0} µs in Postgres (including the relay's reads and updates of the outbox), " +
                         $"{CpuUsage.PerOp(rec.Cpu.RabbitMqSeconds, rec.Calls):0} µs in RabbitMQ; a TPC-B transaction costs " +
                         $"{CpuUsage.PerOp(tpcb.Cpu.PostgresSeconds, tpcb.Tps * tpcb.Seconds):0} µs in Postgres and " +
                         $"{CpuUsage.PerOp(tpcb.Cpu.BenchChildrenSeconds, tpcb.Tps * tpcb.Seconds):0} µs in pgbench.";
        }
    }

    private static IEnumerable<(string Name, double Ops, CpuUsage Cpu)> Phases(BenchReport r)
    {
        if (r.PgbenchSelect is { } a) yield return ("pgbench -S", a.Tps * a.Seconds, a.Cpu);
        if (r.Echo is { } b) yield return ("gRPC echo", b.Calls, b.Cpu);
        if (r.EchoAuth is { } ba) yield return ("gRPC echo with auth", ba.Calls, ba.Cpu);
        if (r.GetCustomer is { } c) yield return ("GetCustomer", c.Calls, c.Cpu);
        if (r.PgbenchTpcb is { } d) yield return ("pgbench TPC-B", d.Tps * d.Seconds, d.Cpu);
        if (r.RecordOrder is { } e) yield return ("RecordOrder", e.Calls, e.Cpu);
        if (r.Earn is { } f) yield return ("earn (RecordOrder + loyalty)", f.OrdersEarned, f.Cpu);
        if (r.Redeem is { } g) yield return ("Redeem", g.Calls, g.Cpu);
    }

    /// <summary>
    /// What each side would reach if it had the whole machine: cores / (CPU per operation of everything the bench
    /// started). Less sensitive to other work on a shared machine than the measured rates; only valid while CPU is the limit.
    /// </summary>
    private static void CapacityRow(StringBuilder s, string name, double ops, CpuUsage cpu, string ceilingName, double ceilingOps, CpuUsage ceilingCpu, int cores)
    {
        double Capacity(double n, CpuUsage c) => cores * 1e6 / CpuUsage.PerOp(c.MachineBusySeconds - c.OtherSeconds, n);
        var mine = Capacity(ops, cpu);
        var ceiling = Capacity(ceilingOps, ceilingCpu);
        Row(s, $"{name} CPU-bound capacity (cores ÷ CPU per op)", Rate(mine, "calls/s"), $"{ceilingName} {Rate(ceiling, "tps")}", F(mine / ceiling, "0.00"), "", "info");
    }

    private static void Row(StringBuilder s, params string[] cells) => s.AppendLine("| " + string.Join(" | ", cells) + " |");

    private static void Detail(StringBuilder s, string name, double rate, long ops, long errors, Latency l) =>
        Row(s, name, F(rate, "N0"), ops.ToString("N0", CultureInfo.InvariantCulture), errors.ToString(CultureInfo.InvariantCulture),
            Ms(l.Mean), Ms(l.P50), Ms(l.P90), Ms(l.P99), Ms(l.P999), Ms(l.Max));

    private static void Cpu(StringBuilder s, string name, double ops, double rate, CpuUsage c) =>
        Row(s, name, F(rate, "N0"), F(c.BusyCores, "0.00"), F(CpuUsage.PerOp(c.BenchSeconds, ops), "0"),
            F(CpuUsage.PerOp(c.BenchChildrenSeconds, ops), "0"), F(CpuUsage.PerOp(c.PostgresSeconds, ops), "0"),
            F(CpuUsage.PerOp(c.RabbitMqSeconds, ops), "0"), F(CpuUsage.PerOp(c.MachineBusySeconds - c.OtherSeconds, ops), "0"),
            F(c.OtherCores, "0.00"));

    private static string Verdict(bool met) => met ? "**met**" : "**not met**";
    private static string Rate(double v, string unit) => $"{F(v, "N0")} {unit}";
    private static string Ms(double v) => double.IsNaN(v) ? "—" : v < 10 ? $"{F(v, "0.00")} ms" : $"{F(v, "0.0")} ms";
    private static string X(double v) => double.IsNaN(v) || double.IsInfinity(v) ? "—" : $"{F(v, "0.0")}×";
    private static string F(double v, string format) => double.IsNaN(v) ? "—" : v.ToString(format, CultureInfo.InvariantCulture);
}
