using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Crm.Bench;

/// <summary>
/// <c>compare-telemetry OFF.json ON.json --results FILE</c>: the telemetry suite's verdict. The same core phases ran
/// twice (bench/run.sh telemetry), without and with export to the dashboard's receiver; each throughput is first
/// taken as a ratio to its own run's pgbench ceiling, so a machine that got slower between the runs does not count
/// against telemetry, and the raw figures are shown beside it.
/// </summary>
public static class TelemetryComparison
{
    public const double MaxDrop = 0.10;

    public static int Run(string[] args)
    {
        if (args.Length != 4 || args[2] != "--results")
        {
            Console.Error.WriteLine("Crm.Bench compare-telemetry OFF.json ON.json --results bench/RESULTS-telemetry.md");
            return 2;
        }
        using var off = JsonDocument.Parse(File.ReadAllText(args[0]));
        using var on = JsonDocument.Parse(File.ReadAllText(args[1]));
        var markdown = Markdown(off.RootElement, on.RootElement, RunFile(args[0], off.RootElement), RunFile(args[1], on.RootElement));
        Console.WriteLine(markdown);
        File.WriteAllText(args[3], markdown);
        return 0;
    }

    /// <summary>The run's own file beside latest.json (bench/out/telemetry-on/bench-RUNID.json).</summary>
    private static string RunFile(string path, JsonElement run) =>
        Path.GetRelativePath("bench/out", Path.Combine(Path.GetDirectoryName(path) ?? "", $"bench-{run.GetProperty("RunId").GetString()}.json"));

    private static string Markdown(JsonElement off, JsonElement on, string offFile, string onFile)
    {
        static double? At(JsonElement e, params string[] path)
        {
            foreach (var p in path)
            {
                if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty(p, out e)) return null;
            }
            return e.ValueKind == JsonValueKind.Number ? e.GetDouble() : null;
        }
        static string F(double? v, string format = "N0") => v is { } x && double.IsFinite(x) ? x.ToString(format, CultureInfo.InvariantCulture) : "—";

        var s = new StringBuilder();
        var m = on.GetProperty("Machine");
        s.AppendLine("# Telemetry benchmark: the core figures with telemetry flowing to the dashboard, against the same run without");
        s.AppendLine();
        s.AppendLine("Written by `bench/run.sh telemetry` (`./crm bench telemetry`). The core bench ran twice on the same machine, one");
        s.AppendLine("after the other, each with its own ceilings (pgbench -S, pgbench TPC-B): first with no OTLP export (the services still");
        s.AppendLine("create their spans and metrics, as they do when no endpoint is set), then with every service exporting traces, logs and");
        s.AppendLine("metrics over OTLP/gRPC to the dashboard's receiver in its own process (`Crm.AppHost otlp-sink`, the receiver and store");
        s.AppendLine("the AppHost runs), with the settings the AppHost hands the services (always-on sampling, batch export every second).");
        s.AppendLine();
        s.AppendLine($"- date: {m.GetProperty("Date").GetString()}; commit: {m.GetProperty("Commit").GetString()}; raw runs: `bench/out/{offFile}`, `bench/out/{onFile}` (not committed)");
        s.AppendLine($"- machine: {m.GetProperty("Cores").GetInt32()} cores ({m.GetProperty("CpuModel").GetString()}), {m.GetProperty("Memory").GetString()}, {m.GetProperty("Runtime").GetString()}");
        s.AppendLine();
        s.AppendLine("| figure | telemetry off | telemetry on | on ÷ off | target | verdict |");
        s.AppendLine("|---|---:|---:|---:|---:|---|");

        void Throughput(string name, string phase, string ceiling)
        {
            var (tOff, tOn) = (At(off, phase, "Throughput"), At(on, phase, "Throughput"));
            var (cOff, cOn) = (At(off, ceiling, "Tps"), At(on, ceiling, "Tps"));
            if (tOff is null || tOn is null) return;
            var rOff = tOff / cOff;
            var rOn = tOn / cOn;
            var change = rOn / rOff;
            s.AppendLine($"| {name} ÷ {ceiling} (same run) | {F(rOff, "0.000")} | {F(rOn, "0.000")} | {F(change, "0.00")} | ≥ {1 - MaxDrop:0.00} | {(change >= 1 - MaxDrop ? "met" : "**not met**")} |");
            s.AppendLine($"| {name} calls/s (raw) | {F(tOff)} | {F(tOn)} | {F(tOn / tOff, "0.00")} |  | info |");
        }

        void Latency(string name, params string[] path)
        {
            var (lOff, lOn) = (At(off, path), At(on, path));
            if (lOff is null || lOn is null) return;
            var change = lOn / lOff;
            s.AppendLine($"| {name} | {F(lOff, "0.0")} ms | {F(lOn, "0.0")} ms | {F(change, "0.00")} | ≤ {1 + MaxDrop:0.00} | {(change <= 1 + MaxDrop ? "met" : "**not met**")} |");
        }

        Throughput("GetCustomer", "GetCustomer", "PgbenchSelect");
        Latency("GetCustomer p99", "GetCustomer", "Latency", "P99");
        Throughput("RecordOrder", "RecordOrder", "PgbenchTpcb");
        Latency("RecordOrder p99", "RecordOrder", "Latency", "P99");
        Latency("Event lag p99 at the paced rate", "EventLag", "LagFromReturn", "P99");

        if (on.TryGetProperty("Telemetry", out var t) && t.ValueKind == JsonValueKind.Object)
        {
            var calls = t.GetProperty("CustomerCalls").GetInt64();
            var spans = t.GetProperty("CustomerServerSpans").GetInt64();
            var lost = t.GetProperty("LostServerSpans").GetInt64();
            var sink = t.GetProperty("Sink");
            s.AppendLine($"| customer server spans received ÷ calls made | — | {spans:N0} ÷ {calls:N0} | {F((double)spans / calls, "0.0000")} | 1, none lost | {(lost == 0 ? "met" : $"**not met**: {lost:N0} lost")} |");
            s.AppendLine();
            s.AppendLine($"The receiver took in {sink.GetProperty("SpansReceived").GetInt64():N0} spans, {sink.GetProperty("LogsReceived").GetInt64():N0} log records " +
                         $"and {sink.GetProperty("PointsReceived").GetInt64():N0} metric points during the run; its store keeps the newest 50,000 spans and " +
                         $"20,000 logs (evicted by that limit, not lost on the way: {sink.GetProperty("SpansEvicted").GetInt64():N0} spans, " +
                         $"{sink.GetProperty("LogsEvicted").GetInt64():N0} logs; metric points not kept: {sink.GetProperty("PointsDropped").GetInt64():N0}). " +
                         $"Spans lost between a service and the receiver (e.g. the exporter's queue overflowing) show as calls without a server span.");
        }
        return s.ToString();
    }
}
