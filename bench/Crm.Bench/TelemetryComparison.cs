using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Crm.Bench;

/// <summary>
/// <c>compare-telemetry --off A.json C.json … --on B.json D.json … --results FILE</c>: the telemetry suite's verdict. The
/// same core phases ran several times (bench/run.sh telemetry), alternately without and with export to the dashboard's
/// receiver; each throughput is first taken as a ratio to its own run's pgbench ceiling, so a machine that got slower
/// between runs does not count against telemetry. The verdict compares the medians of the off runs and the on runs (for the
/// event lag, the p99 of all their events pooled): one pair alone is not enough, since a 15 s closed loop's p99 moves by
/// more than the 10 % being judged from run to run.
/// </summary>
public static class TelemetryComparison
{
    public const double MaxDrop = 0.10;

    public static int Run(string[] args)
    {
        var (offPaths, onPaths, results) = Parse(args);
        if (offPaths.Count == 0 || onPaths.Count == 0 || results is null)
        {
            Console.Error.WriteLine("Crm.Bench compare-telemetry --off OFF.json… --on ON.json… --results bench/RESULTS-telemetry.md");
            return 2;
        }
        var off = offPaths.Select(p => JsonDocument.Parse(File.ReadAllText(p)).RootElement).ToList();
        var on = onPaths.Select(p => JsonDocument.Parse(File.ReadAllText(p)).RootElement).ToList();
        var markdown = Markdown(off, on, offPaths.Select((p, i) => RunFile(p, off[i])).ToList(), onPaths.Select((p, i) => RunFile(p, on[i])).ToList());
        Console.WriteLine(markdown);
        File.WriteAllText(results, markdown);
        return 0;
    }

    private static (List<string> Off, List<string> On, string? Results) Parse(string[] args)
    {
        List<string> off = [], on = [];
        List<string>? current = null;
        string? results = null;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--off": current = off; break;
                case "--on": current = on; break;
                case "--results" when i + 1 < args.Length: results = args[++i]; current = null; break;
                default:
                    if (current is null) return ([], [], null);
                    current.Add(args[i]);
                    break;
            }
        }
        return (off, on, results);
    }

    /// <summary>The run's own file (bench/out/telemetry-on-2/bench-RUNID.json) when given its latest.json.</summary>
    private static string RunFile(string path, JsonElement run) =>
        Path.GetRelativePath("bench/out", Path.Combine(Path.GetDirectoryName(path) ?? "", $"bench-{run.GetProperty("RunId").GetString()}.json"));

    private static double? At(JsonElement e, params string[] path)
    {
        foreach (var p in path)
        {
            if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty(p, out e)) return null;
        }
        return e.ValueKind == JsonValueKind.Number ? e.GetDouble() : null;
    }

    private static double? Median(IEnumerable<double?> values)
    {
        var v = values.Where(x => x is { } d && double.IsFinite(d)).Select(x => x!.Value).Order().ToArray();
        if (v.Length == 0) return null;
        return v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
    }

    /// <summary>The nearest-rank p99, as Latency computes each run's.</summary>
    private static double? P99(IEnumerable<double> values)
    {
        var v = values.Order().ToArray();
        return v.Length == 0 ? null : v[Math.Clamp((int)Math.Ceiling(0.99 * v.Length) - 1, 0, v.Length - 1)];
    }

    private static string F(double? v, string format = "N0") => v is { } x && double.IsFinite(x) ? x.ToString(format, CultureInfo.InvariantCulture) : "—";

    private static string Each(IEnumerable<double?> values, string format) => string.Join(", ", values.Select(v => F(v, format)));

    private static string Markdown(List<JsonElement> off, List<JsonElement> on, List<string> offFiles, List<string> onFiles)
    {
        var s = new StringBuilder();
        var m = on[0].GetProperty("Machine");
        s.AppendLine("# Telemetry benchmark: the core figures with telemetry flowing to the dashboard, against the same runs without");
        s.AppendLine();
        s.AppendLine("Written by `bench/run.sh telemetry` (`./crm bench telemetry`). The core bench ran several times on the same machine,");
        s.AppendLine("alternately with no OTLP export (no endpoint set: the services then register no tracing or metrics instrumentation");
        s.AppendLine("at all) and with every service exporting traces, logs and metrics over OTLP/gRPC to the dashboard's receiver in its own");
        s.AppendLine("process (`Crm.AppHost otlp-sink`, the receiver and store the AppHost runs), with the settings the AppHost hands the");
        s.AppendLine("services (always-on sampling, batch export every second). Each run has its own ceilings (pgbench -S, pgbench TPC-B).");
        s.AppendLine("The verdict compares the median of the off runs with the median of the on runs (the event lag: the p99 over all events of");
        s.AppendLine("a side's runs together); every run's figure is listed after it.");
        s.AppendLine();
        s.AppendLine($"- date: {m.GetProperty("Date").GetString()}; commit: {m.GetProperty("Commit").GetString()}; {off.Count} runs off, {on.Count} on");
        s.AppendLine($"- raw runs (not committed): off {string.Join(", ", offFiles.Select(f => $"`bench/out/{f}`"))}; on {string.Join(", ", onFiles.Select(f => $"`bench/out/{f}`"))}");
        s.AppendLine($"- machine: {m.GetProperty("Cores").GetInt32()} cores ({m.GetProperty("CpuModel").GetString()}), {m.GetProperty("Memory").GetString()}, {m.GetProperty("Runtime").GetString()}");
        s.AppendLine();
        s.AppendLine("| figure | telemetry off (median) | telemetry on (median) | on ÷ off | target | verdict | off runs | on runs |");
        s.AppendLine("|---|---:|---:|---:|---:|---|---|---|");

        void Throughput(string name, string phase, string ceiling)
        {
            double? Ratio(JsonElement run) => At(run, phase, "Throughput") / At(run, ceiling, "Tps");
            var (rOff, rOn) = (off.Select(Ratio).ToList(), on.Select(Ratio).ToList());
            var (mOff, mOn) = (Median(rOff), Median(rOn));
            if (mOff is null || mOn is null) return;
            var change = mOn / mOff;
            s.AppendLine($"| {name} ÷ {ceiling} (same run) | {F(mOff, "0.000")} | {F(mOn, "0.000")} | {F(change, "0.00")} | ≥ {1 - MaxDrop:0.00} | " +
                         $"{(change >= 1 - MaxDrop ? "met" : "**not met**")} | {Each(rOff, "0.000")} | {Each(rOn, "0.000")} |");
            var (tOff, tOn) = (off.Select(r => At(r, phase, "Throughput")).ToList(), on.Select(r => At(r, phase, "Throughput")).ToList());
            s.AppendLine($"| {name} calls/s (raw) | {F(Median(tOff))} | {F(Median(tOn))} | {F(Median(tOn) / Median(tOff), "0.00")} |  | info | {Each(tOff, "N0")} | {Each(tOn, "N0")} |");
        }

        void Latency(string name, params string[] path)
        {
            var (lOff, lOn) = (off.Select(r => At(r, path)).ToList(), on.Select(r => At(r, path)).ToList());
            var (mOff, mOn) = (Median(lOff), Median(lOn));
            if (mOff is null || mOn is null) return;
            var change = mOn / mOff;
            s.AppendLine($"| {name} | {F(mOff, "0.0")} ms | {F(mOn, "0.0")} ms | {F(change, "0.00")} | ≤ {1 + MaxDrop:0.00} | " +
                         $"{(change <= 1 + MaxDrop ? "met" : "**not met**")} | {Each(lOff, "0.0")} | {Each(lOn, "0.0")} |");
        }

        // A paced run's lag p99 is its 50th-slowest event of 5,000, so one stall moves it (19 to 38 ms between off runs
        // of one afternoon). The verdict takes the p99 over every event of all runs of a side together; each run's own
        // p99 is still listed.
        void PooledLagP99()
        {
            static List<double>? Lags(JsonElement run) =>
                run.TryGetProperty("EventLag", out var lag) && lag.ValueKind == JsonValueKind.Object &&
                lag.TryGetProperty("LagsMs", out var lags) && lags.ValueKind == JsonValueKind.Array
                    ? lags.EnumerateArray().Select(l => l.GetDouble()).ToList() : null;
            var (offLags, onLags) = (off.Select(Lags).ToList(), on.Select(Lags).ToList());
            if (offLags.Concat(onLags).Any(l => l is null))
            {
                Latency("Event lag p99 at the paced rate", "EventLag", "LagFromReturn", "P99"); // runs from before LagsMs
                return;
            }
            var (pOff, pOn) = (P99(offLags.SelectMany(l => l!)), P99(onLags.SelectMany(l => l!)));
            if (pOff is null || pOn is null) return;
            var change = pOn / pOff;
            var (eOff, eOn) = (off.Select(r => At(r, "EventLag", "LagFromReturn", "P99")), on.Select(r => At(r, "EventLag", "LagFromReturn", "P99")));
            s.AppendLine($"| Event lag p99 at the paced rate (all runs' events together; each run's p99 after) | {F(pOff, "0.0")} ms | {F(pOn, "0.0")} ms | " +
                         $"{F(change, "0.00")} | ≤ {1 + MaxDrop:0.00} | {(change <= 1 + MaxDrop ? "met" : "**not met**")} | {Each(eOff, "0.0")} | {Each(eOn, "0.0")} |");
        }

        Throughput("GetCustomer", "GetCustomer", "PgbenchSelect");
        Latency("GetCustomer p99", "GetCustomer", "Latency", "P99");
        Throughput("RecordOrder", "RecordOrder", "PgbenchTpcb");
        Latency("RecordOrder p99", "RecordOrder", "Latency", "P99");
        PooledLagP99();

        var telemetry = on.Where(r => r.TryGetProperty("Telemetry", out var t) && t.ValueKind == JsonValueKind.Object)
            .Select(r => r.GetProperty("Telemetry")).ToList();
        if (telemetry.Count > 0)
        {
            var calls = telemetry.Sum(t => t.GetProperty("CustomerCalls").GetInt64());
            var spans = telemetry.Sum(t => t.GetProperty("CustomerServerSpans").GetInt64());
            var lost = telemetry.Sum(t => t.GetProperty("LostServerSpans").GetInt64());
            s.AppendLine($"| customer server spans received ÷ calls made, all on runs | — | {spans:N0} ÷ {calls:N0} | {F((double)spans / calls, "0.0000")} | 1, none lost | " +
                         $"{(lost == 0 ? "met" : $"**not met**: {lost:N0} lost")} |  |  |");
            s.AppendLine();
            long Sum(string name) => telemetry.Sum(t => t.GetProperty("Sink").GetProperty(name).GetInt64());
            s.AppendLine($"Over the on runs the receiver took in {Sum("SpansReceived"):N0} spans, {Sum("LogsReceived"):N0} log records " +
                         $"and {Sum("PointsReceived"):N0} metric points; its store keeps the newest 50,000 spans and " +
                         $"20,000 logs (evicted by that limit, not lost on the way: {Sum("SpansEvicted"):N0} spans, " +
                         $"{Sum("LogsEvicted"):N0} logs; metric points not kept: {Sum("PointsDropped"):N0}). " +
                         "Spans lost between a service and the receiver (e.g. the exporter's queue overflowing) show as calls without a server span.");
        }
        return s.ToString();
    }
}
