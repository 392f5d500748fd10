using System.Runtime;
using Crm.Bench;

namespace Crm.Bench.Tickets;

/// <summary>Methods the JIT compiled and the time it spent, process-wide (bench client and in-process service alike).</summary>
public readonly record struct JitActivity(long Methods, TimeSpan Time)
{
    public static JitActivity operator -(JitActivity a, JitActivity b) => new(a.Methods - b.Methods, a.Time - b.Time);
    public override string ToString() => $"{Methods:N0} methods compiled, {Time.TotalMilliseconds:N0} ms in the JIT";
}

/// <summary>What the JIT warm-up before a measured phase did.</summary>
public sealed record JitWarmUpResult(int Rounds, double Seconds, long Calls, JitActivity Jit, JitActivity LastRound, bool Settled)
{
    public override string ToString() =>
        $"{Rounds} rounds ({Calls:N0} calls, {Seconds:0} s): {Jit}; last round {LastRound}" +
        (Settled ? "" : " (not settled: the cap was reached)");
}

public static class JitWarmUp
{
    public const double RoundSeconds = 3;
    /// <summary>
    /// Settled: a round of load costs the JIT under 2 % of a core over the round. Tiering a method up is a few ms, so this
    /// is a handful of late methods, against hundreds a round while the service is still new.
    /// </summary>
    private const double SettledJitShare = 0.02;

    public static JitActivity Snapshot() => new(JitInfo.GetCompiledMethodCount(), JitInfo.GetCompilationTime());

    /// <summary>Runs rounds of load (each returns its calls and wall time) until one spends little time in the JIT, or until the cap.</summary>
    public static async Task<JitWarmUpResult> UntilSettledAsync(TimeSpan cap, Func<Task<(long Calls, TimeSpan Wall)>> round)
    {
        var first = Snapshot();
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var rounds = 0;
        long calls = 0;
        while (true)
        {
            var before = Snapshot();
            var (n, wall) = await round();
            calls += n;
            rounds++;
            var last = Snapshot() - before;
            var settled = last.Time < wall * SettledJitShare;
            if (settled || watch.Elapsed >= cap)
                return new JitWarmUpResult(rounds, watch.Elapsed.TotalSeconds, calls, Snapshot() - first, last, settled);
        }
    }
}
