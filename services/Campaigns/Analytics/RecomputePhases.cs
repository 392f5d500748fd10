using System.Diagnostics;

namespace Crm.Campaigns.Analytics;

/// <summary>
/// A recompute's phases as they end: one Information line each with its duration (where a slow run spends its time, in
/// production too), and the same figures in one summary for the run's last line. Each line also gives the CPU this process
/// spent in the phase (against the wall time it says whether the service or Postgres is the one to make faster).
/// </summary>
public sealed class RecomputePhases(ILogger logger, long runId)
{
    private readonly Stopwatch _watch = Stopwatch.StartNew();
    private readonly List<string> _summary = [];
    private readonly Lock _lock = new();
    private TimeSpan _last;
    private TimeSpan _lastCpu = Environment.CpuUsage.TotalTime;

    /// <summary>The phase that ran since the previous one ended.</summary>
    public void Done(string phase, string detail = "")
    {
        lock (_lock)
        {
            var now = _watch.Elapsed;
            var cpu = Environment.CpuUsage.TotalTime;
            var serviceCpu = FormattableString.Invariant($"service CPU {(cpu - _lastCpu).TotalSeconds:0.00} s");
            Record(phase, (now - _last).TotalSeconds, detail.Length > 0 ? $"{serviceCpu}; {detail}" : serviceCpu);
            (_last, _lastCpu) = (now, cpu);
        }
    }

    /// <summary>A phase timed by its caller (one that ran beside another).</summary>
    public void Record(string phase, double seconds, string detail = "")
    {
        lock (_lock)
        {
            logger.LogInformation("Recompute {Run} phase {Phase}: {Seconds:0.00} s{Detail}", runId, phase, seconds, detail.Length > 0 ? "; " + detail : "");
            _summary.Add(FormattableString.Invariant($"{phase} {seconds:0.00} s"));
        }
    }

    public double TotalSeconds => _watch.Elapsed.TotalSeconds;

    public string Summary
    {
        get { lock (_lock) return string.Join(", ", _summary); }
    }
}
