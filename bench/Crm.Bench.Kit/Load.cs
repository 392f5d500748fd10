using System.Diagnostics;

namespace Crm.Bench;

/// <summary>Latency figures of one phase, in milliseconds.</summary>
public sealed record Latency(long Count, double Mean, double P50, double P90, double P99, double P999, double Max)
{
    public static Latency FromTicks(List<long> ticks)
    {
        if (ticks.Count == 0) return new Latency(0, double.NaN, double.NaN, double.NaN, double.NaN, double.NaN, double.NaN);
        ticks.Sort();
        double Ms(long t) => t * 1000.0 / Stopwatch.Frequency;
        double At(double q) => Ms(ticks[Math.Clamp((int)Math.Ceiling(q * ticks.Count) - 1, 0, ticks.Count - 1)]);
        return new Latency(ticks.Count, Ms((long)ticks.Average()), At(0.50), At(0.90), At(0.99), At(0.999), Ms(ticks[^1]));
    }

    public static Latency FromMicroseconds(List<long> micros)
    {
        var ticks = micros.Select(us => us * Stopwatch.Frequency / 1_000_000).ToList();
        return FromTicks(ticks);
    }
}

/// <summary>Throughput and latency of one closed-loop phase, with the CPU spent during its measured window.</summary>
public sealed record LoadResult(
    string Name, int Clients, int Connections, double Seconds, long Calls, long Errors, double Throughput,
    Latency Latency, CpuUsage Cpu, string? FirstError);

/// <summary>
/// A fixed-duration closed loop: <c>clients</c> async workers, each awaiting one call at a time, for warm-up plus
/// duration. Only calls that start and end inside the measured window are counted.
/// </summary>
public static class ClosedLoop
{
    public static async Task<LoadResult> RunAsync(
        string name, int clients, int connections, TimeSpan warmup, TimeSpan duration,
        Func<int, Func<Task>> callFactory, CpuMeter cpu, CancellationToken ct)
    {
        var start = Stopwatch.GetTimestamp();
        var measureStart = start + (long)(warmup.TotalSeconds * Stopwatch.Frequency);
        var measureEnd = measureStart + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var perWorker = new List<long>[clients];
        long errors = 0;
        string? firstError = null;

        async Task Worker(int index)
        {
            var call = callFactory(index);
            var latencies = perWorker[index] = new List<long>(64 * 1024);
            while (!ct.IsCancellationRequested)
            {
                var t0 = Stopwatch.GetTimestamp();
                if (t0 >= measureEnd) break;
                var ok = true;
                try
                {
                    await call();
                }
                catch (Exception e) when (!ct.IsCancellationRequested)
                {
                    ok = false;
                    if (t0 >= measureStart) Interlocked.Increment(ref errors);
                    Interlocked.CompareExchange(ref firstError, e.GetType().Name + ": " + e.Message, null);
                    await Task.Delay(10, CancellationToken.None); // do not spin on a broken server
                }
                var t1 = Stopwatch.GetTimestamp();
                if (ok && t0 >= measureStart && t1 <= measureEnd) latencies.Add(t1 - t0);
            }
        }

        var window = Task.Run(async () =>
        {
            await DelayUntil(measureStart, ct);
            var before = cpu.Snapshot();
            await DelayUntil(measureEnd, ct);
            return cpu.Snapshot() - before;
        }, ct);
        var workers = Enumerable.Range(0, clients).Select(i => Task.Run(() => Worker(i), ct)).ToArray();
        await Task.WhenAll(workers);
        var usage = await window;

        var all = new List<long>(perWorker.Sum(l => l.Count));
        foreach (var list in perWorker) all.AddRange(list);
        var latency = Latency.FromTicks(all);
        var seconds = duration.TotalSeconds;
        return new LoadResult(name, clients, connections, seconds, all.Count, errors, all.Count / seconds, latency, usage, firstError);
    }

    public static async Task DelayUntil(long timestamp, CancellationToken ct)
    {
        var remaining = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), timestamp);
        if (remaining > TimeSpan.Zero) await Task.Delay(remaining, ct);
    }
}
