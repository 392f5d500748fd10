using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Crm.Bench;

public sealed record OutboxDrain(long BacklogRows, double DrainSeconds, long LeftRows, long ChangeEvents)
{
    public double RelayRate => DrainSeconds > 0 && BacklogRows > 0 ? BacklogRows / DrainSeconds : double.NaN;
}

public sealed class BenchReport
{
    public required string RunId { get; init; }
    public required Options Options { get; init; }
    public required MachineInfo Machine { get; init; }
    public PgbenchResult? PgbenchSelect { get; set; }
    public PgbenchResult? PgbenchTpcb { get; set; }
    public LoadResult? Echo { get; set; }
    /// <summary>The echo behind the services' authentication, rate limiter and role check.</summary>
    public LoadResult? EchoAuth { get; set; }
    public LoadResult? GetCustomer { get; set; }
    public LoadResult? RecordOrder { get; set; }
    public OutboxDrain? OutboxDrain { get; set; }
    public EventLagResult? EventLag { get; set; }
    public EarnResult? Earn { get; set; }
    public LoadResult? Redeem { get; set; }
    /// <summary>How the redeem phase was set up (members, rewards, points granted).</summary>
    public string? RedeemSetup { get; set; }
    /// <summary>Set when the run exported telemetry (--telemetry).</summary>
    public TelemetryResult? Telemetry { get; set; }
    public string? Failure { get; set; }
    public List<string> LeftoverProcesses { get; set; } = [];
    /// <summary>Per phase: how long the bench waited for the machine to go quiet, and the foreign load it saw.</summary>
    public List<string> Background { get; set; } = [];
    public double TotalSeconds { get; set; }

    /// <summary>Hand-written analysis appended under Notes (bench/NOTES.md).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string? AnalysisFile { get; set; }
}

public static class EventLagAnalysis
{
    public static EventLagResult Analyse(double rate, OpenLoop.Call[] calls, double sendSeconds, EventLagProbe probe, string prefix,
        double waitedSeconds, CpuUsage cpu, string? firstError)
    {
        var fromReturn = new List<long>();
        var fromStart = new List<long>();
        var callLatency = new List<long>();
        var beforeReturn = 0;
        var ok = 0;
        for (var i = 0; i < calls.Length; i++)
        {
            var call = calls[i];
            if (!call.Ok) continue;
            ok++;
            callLatency.Add(call.ReturnedAt - call.StartedAt);
            if (!probe.TryGetArrival(prefix + i, out var arrived)) continue;
            fromReturn.Add(arrived - call.ReturnedAt);
            fromStart.Add(arrived - call.StartedAt);
            if (arrived < call.ReturnedAt) beforeReturn++;
        }
        var first = calls.Length > 0 ? calls.Min(c => c.StartedAt) : 0;
        var perSecond = calls.Select((c, i) => (Call: c, Index: i))
            .GroupBy(x => (int)((x.Call.StartedAt - first) / Stopwatch.Frequency))
            .OrderBy(g => g.Key)
            .Select(g =>
            {
                var latency = Latency.FromTicks(g.Where(x => x.Call.Ok).Select(x => x.Call.ReturnedAt - x.Call.StartedAt).ToList());
                var lags = Latency.FromTicks(g.Where(x => x.Call.Ok && probe.TryGetArrival(prefix + x.Index, out _))
                    .Select(x => { probe.TryGetArrival(prefix + x.Index, out var a); return a - x.Call.ReturnedAt; }).ToList());
                return new LagSecond(g.Key, g.Count(), latency.P50, latency.Max, lags.P50, lags.Max);
            }).ToList();
        var starts = calls.Select(c => c.StartedAt).Order().ToArray();
        var span = starts.Length > 1 ? (starts[^1] - starts[0]) / (double)Stopwatch.Frequency : sendSeconds;
        var achieved = starts.Length > 1 ? (starts.Length - 1) / span : double.NaN;
        return new EventLagResult(rate, achieved, sendSeconds, calls.Length, calls.Length - ok, fromReturn.Count, probe.Duplicates,
            fromReturn.Count == ok && ok == calls.Length, waitedSeconds,
            Latency.FromTicks(fromReturn), Latency.FromTicks(fromStart), Latency.FromTicks(callLatency), beforeReturn, cpu, firstError, perSecond,
            // every event's lag (from return), so several runs' percentiles can be taken over all their events together
            fromReturn.Select(t => Math.Round(t * 1000.0 / Stopwatch.Frequency, 2)).ToList());
    }
}
