using System.Collections.Concurrent;
using System.Diagnostics;
using Npgsql;

namespace Crm.Bench;

/// <summary>
/// Earning end to end: RecordOrder in a closed loop on the customer service, then the loyalty service's ledger
/// (OrderPaid → outbox relay → RabbitMQ → OrderPaidConsumer → ledger_entries committed) until every order has earned.
/// </summary>
public sealed record EarnResult(
    int Clients, double SendSeconds, long OrdersSent, long SendErrors, double RecordOrderRate, Latency RecordOrderLatency,
    long OrdersEarned, bool AllEarned, double EndToEndSeconds, double EarnRate, double EarnedDuringSend, double DrainSeconds,
    Latency LagFromReturn, CpuUsage Cpu, string? FirstError, IReadOnlyList<int> EarnedPerSecond);

public static class EarnPhase
{
    private sealed record Sent(Guid OrderId, long StartedAt, long ReturnedAt, DateTime ReturnedUtc);

    public static async Task<EarnResult> RunAsync(int clients, TimeSpan duration, double drainLimitSeconds,
        Func<int, Func<Task<string>>> callFactory, NpgsqlDataSource loyaltyDb, CpuMeter cpu, CancellationToken ct)
    {
        var baseline = await CountAsync(loyaltyDb, ct);
        var sent = new ConcurrentBag<Sent>();
        long errors = 0;
        string? firstError = null;
        var before = cpu.Snapshot();
        var start = Stopwatch.GetTimestamp();
        var startUtc = DateTime.UtcNow;
        var end = start + (long)(duration.TotalSeconds * Stopwatch.Frequency);

        // The ledger's row count, sampled while the phase runs (what was earned second by second).
        var samples = new List<(double Seconds, long Count)>();
        using var stopSampling = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var sampler = Task.Run(async () =>
        {
            while (!stopSampling.IsCancellationRequested)
            {
                var n = await CountAsync(loyaltyDb, CancellationToken.None) - baseline;
                lock (samples) samples.Add((Stopwatch.GetElapsedTime(start).TotalSeconds, n));
                try { await Task.Delay(250, stopSampling.Token); } catch (OperationCanceledException) { break; }
            }
        }, CancellationToken.None);

        async Task Worker(int index)
        {
            var call = callFactory(index);
            while (!ct.IsCancellationRequested && Stopwatch.GetTimestamp() < end)
            {
                var t0 = Stopwatch.GetTimestamp();
                try
                {
                    var id = await call();
                    sent.Add(new Sent(Guid.Parse(id), t0, Stopwatch.GetTimestamp(), DateTime.UtcNow));
                }
                catch (Exception e) when (!ct.IsCancellationRequested)
                {
                    Interlocked.Increment(ref errors);
                    Interlocked.CompareExchange(ref firstError, e.GetType().Name + ": " + e.Message, null);
                    await Task.Delay(10, CancellationToken.None);
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, clients).Select(i => Task.Run(() => Worker(i), ct)));
        var sendSeconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        var earnedAtSendEnd = await CountAsync(loyaltyDb, ct) - baseline;
        var orders = sent.Count;

        // Wait for the backlog (outbox → broker → loyalty consumer) to drain.
        var drain = Stopwatch.StartNew();
        var earned = earnedAtSendEnd;
        while (earned < orders && drain.Elapsed.TotalSeconds < drainLimitSeconds)
        {
            await Task.Delay(50, ct);
            earned = await CountAsync(loyaltyDb, ct) - baseline;
        }
        var drainSeconds = drain.Elapsed.TotalSeconds;
        var usage = cpu.Snapshot() - before;
        await stopSampling.CancelAsync();
        await sampler;

        // End to end: from the first RecordOrder's start to the created_at of the last earning entry.
        var created = new Dictionary<Guid, DateTime>();
        await using (var command = loyaltyDb.CreateCommand(
            "SELECT source_ref, created_at FROM ledger_entries WHERE source = 'order' AND created_at >= $1"))
        {
            command.Parameters.AddWithValue(startUtc.AddSeconds(-1));
            await using var reader = await command.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
                if (Guid.TryParse(reader.GetString(0), out var g)) created[g] = reader.GetDateTime(1);
        }
        var lags = new List<long>();
        var last = DateTime.MinValue;
        foreach (var s in sent)
        {
            if (!created.TryGetValue(s.OrderId, out var at)) continue;
            if (at > last) last = at;
            lags.Add((long)((at - s.ReturnedUtc).TotalSeconds * Stopwatch.Frequency));
        }
        var endToEnd = last > startUtc ? (last - startUtc).TotalSeconds : double.NaN;
        var matched = lags.Count;
        List<int> perSecond;
        lock (samples)
        {
            perSecond = [];
            long previous = 0;
            for (var second = 1; second <= (int)Math.Ceiling(samples.Count == 0 ? 0 : samples[^1].Seconds); second++)
            {
                var upTo = samples.LastOrDefault(x => x.Seconds <= second).Count;
                perSecond.Add((int)(upTo - previous));
                previous = upTo;
            }
        }
        var callLatency = Latency.FromTicks(sent.Select(s => s.ReturnedAt - s.StartedAt).ToList());
        return new EarnResult(clients, sendSeconds, orders, errors, orders / sendSeconds, callLatency, matched, matched == orders && earned >= orders,
            endToEnd, matched / endToEnd, earnedAtSendEnd / sendSeconds, drainSeconds, LatencyFromSignedTicks(lags), usage, firstError, perSecond);
    }

    // Clock skew between the DateTime.UtcNow readings can make a few lags slightly negative; keep them (clamped at 0).
    private static Latency LatencyFromSignedTicks(List<long> ticks) => Latency.FromTicks(ticks.Select(t => Math.Max(0, t)).ToList());

    public static async Task<long> CountAsync(NpgsqlDataSource db, CancellationToken ct)
    {
        await using var command = db.CreateCommand("SELECT count(*) FROM order_earnings");
        return Convert.ToInt64(await command.ExecuteScalarAsync(ct), System.Globalization.CultureInfo.InvariantCulture);
    }
}
