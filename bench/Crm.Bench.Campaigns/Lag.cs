using System.Collections.Concurrent;
using System.Diagnostics;
using Crm.Contracts;
using MassTransit;
using Npgsql;

namespace Crm.Bench.Campaigns;

public sealed record LagResult(double TargetRate, double AchievedRate, int Sent, int Arrived, int PublishErrors, Latency Lag, Latency Publish,
    double PollMilliseconds, CpuUsage Cpu, string? FirstError);

/// <summary>
/// OrderPaid events published at a fixed rate (open loop) through MassTransit as the customer service's outbox relay
/// publishes them (bus.Publish with the message id set, publisher confirms), for existing customers; a poller asks the
/// campaign service's read model every few milliseconds which of the pending orders it has. Lag = first poll that sees the
/// order − the moment bus.Publish was called for it (the relay handing the event to the broker: what the campaign service and
/// the broker make of it from then on, not the customer service's outbox delay before, and not only from the broker's confirm,
/// which a consumer can beat). It includes up to one poll interval of the poller's own.
/// </summary>
public static class Lag
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(5);

    public static Task<LagResult> RunAsync(string amqp, string campaignsDb, IReadOnlyList<Guid> customers, double rate, TimeSpan duration,
        CpuMeter cpu, CancellationToken ct)
    {
        var random = new Random(7);
        return RunAsync(amqp, campaignsDb, rate, duration, cpu, i =>
        {
            var message = Event(customers[i == 0 ? 0 : random.Next(customers.Count)], i == 0 ? "LAG-WARM" : $"LAG-{i}");
            return (message.OrderId, message);
        }, "SELECT order_id FROM orders WHERE order_id = ANY ($1)", ct);
    }

    /// <summary>
    /// Events from <paramref name="next"/> (0: the unmeasured warm-up, then 1, 2, …) published at <paramref name="rate"/>; each
    /// arrives when <paramref name="arrivedSql"/> (given the pending keys as $1, a uuid[]) returns its key.
    /// </summary>
    public static async Task<LagResult> RunAsync(string amqp, string campaignsDb, double rate, TimeSpan duration, CpuMeter cpu,
        Func<int, (Guid Key, object Message)> next, string arrivedSql, CancellationToken ct)
    {
        var uri = new Uri(amqp);
        var bus = Bus.Factory.CreateUsingRabbitMq(cfg => cfg.Host(uri, host =>
        {
            var userInfo = uri.UserInfo.Split(':', 2);
            if (userInfo[0].Length > 0) host.Username(Uri.UnescapeDataString(userInfo[0]));
            if (userInfo.Length > 1) host.Password(Uri.UnescapeDataString(userInfo[1]));
        }));
        await bus.StartAsync(ct);
        try
        {
            // One unmeasured event first: the exchange, the channel and the JIT are ready before the clock runs.
            var pending = new ConcurrentDictionary<Guid, long>();
            var lags = new ConcurrentBag<(long Started, long Lag)>();
            var warm = next(0);
            pending[warm.Key] = Stopwatch.GetTimestamp();
            await bus.Publish(warm.Message, c => c.MessageId = NewId.NextGuid(), ct);
            await using var dataSource = NpgsqlDataSource.Create(campaignsDb);
            await PollUntilAsync(dataSource, arrivedSql, pending, null, TimeSpan.FromSeconds(30), ct);

            var total = (int)Math.Round(rate * duration.TotalSeconds);
            var publishTimes = new long[total];
            var errors = 0;
            string? firstError = null;
            var interval = Stopwatch.Frequency / rate;
            var inflight = new List<Task>(total);
            var before = cpu.Snapshot();
            var checkpointsBefore = await CheckpointsAsync(dataSource, ct);
            using var stopPolling = new CancellationTokenSource();
            var poller = PollUntilAsync(dataSource, arrivedSql, pending, lags, null, ct, () => stopPolling.IsCancellationRequested);
            async Task PublishAsync(int i, Guid key, object message)
            {
                var started = Stopwatch.GetTimestamp();
                pending[key] = started;
                try { await bus.Publish(message, c => c.MessageId = NewId.NextGuid(), ct); }
                catch (Exception e) when (!ct.IsCancellationRequested)
                {
                    Interlocked.Increment(ref errors);
                    Interlocked.CompareExchange(ref firstError, e.GetType().Name + ": " + e.Message, null);
                    pending.TryRemove(key, out _);
                }
                publishTimes[i] = Stopwatch.GetTimestamp() - started;
            }
            var t0 = Stopwatch.GetTimestamp();
            for (var n = 0; n < total;)
            {
                var now = Stopwatch.GetTimestamp();
                while (n < total && t0 + (long)(n * interval) <= now)
                {
                    var i = n++;
                    var (key, message) = next(i + 1);
                    // Called here, not on a Task.Run of its own: the publish's synchronous part (serialising, handing the frame to
                    // the client) runs in this loop and only the wait for the broker's confirm is left in flight.
                    inflight.Add(PublishAsync(i, key, message));
                }
                if (n < total) await Task.Delay(1, ct);
            }
            var sendSeconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            await Task.WhenAll(inflight);
            var sent = total;
            // Every published order must arrive; give up 60 s after the last publish.
            var deadline = Stopwatch.GetTimestamp() + 60 * Stopwatch.Frequency;
            while (!pending.IsEmpty && Stopwatch.GetTimestamp() < deadline) await Task.Delay(20, ct);
            stopPolling.Cancel();
            await poller;
            var usage = cpu.Snapshot() - before;
            LogWorstSeconds(lags, t0);
            var checkpointsAfter = await CheckpointsAsync(dataSource, ct);
            BenchHost.Log($"  Postgres checkpoints during the phase (timed, requested, write ms, sync ms): {checkpointsBefore} → {checkpointsAfter}");
            return new LagResult(rate, sent / sendSeconds, sent, lags.Count, errors, Latency.FromTicks(lags.Select(l => l.Lag).ToList()),
                Latency.FromTicks(publishTimes.Where(t => t > 0).ToList()), PollInterval.TotalMilliseconds, usage, firstError);
        }
        finally
        {
            await bus.StopAsync(CancellationToken.None);
        }
    }

    private static OrderPaid Event(Guid customer, string externalId) =>
        new(NewId.NextGuid(), customer, externalId, "S1", "store", [new OrderLineItem("SKU-0001", "Product 0001", 1, 1_000m)], 1_000m, DateTimeOffset.UtcNow);

    /// <summary>Polls the read model for the pending orders; records each arrival's lag (when <paramref name="lags"/> is given).</summary>
    private static async Task PollUntilAsync(NpgsqlDataSource dataSource, string arrivedSql, ConcurrentDictionary<Guid, long> pending,
        ConcurrentBag<(long Started, long Lag)>? lags,
        TimeSpan? timeout, CancellationToken ct, Func<bool>? stop = null)
    {
        var deadline = timeout is { } t ? Stopwatch.GetTimestamp() + (long)(t.TotalSeconds * Stopwatch.Frequency) : long.MaxValue;
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        while (true)
        {
            var ids = pending.Keys.ToArray();
            if (ids.Length > 0)
            {
                await using var command = new NpgsqlCommand(arrivedSql, connection)
                {
                    Parameters = { new() { Value = ids } },
                };
                await using var reader = await command.ExecuteReaderAsync(ct);
                var seenAt = Stopwatch.GetTimestamp();
                while (await reader.ReadAsync(ct))
                    if (pending.TryRemove(reader.GetGuid(0), out var started)) lags?.Add((started, seenAt - started));
            }
            else if (timeout is not null) return;
            if (stop?.Invoke() == true || Stopwatch.GetTimestamp() > deadline) return;
            await Task.Delay(PollInterval, ct);
        }
    }

    /// <summary>Diagnosis of a tail: the seconds of the phase (by publish time) with the worst lags, to tell one stall from a steady queue.</summary>
    private static void LogWorstSeconds(IEnumerable<(long Started, long Lag)> lags, long t0)
    {
        var worst = lags.GroupBy(l => (l.Started - t0) / Stopwatch.Frequency)
            .Select(g => (Second: g.Key, Count: g.Count(), Max: g.Max(l => l.Lag) * 1000.0 / Stopwatch.Frequency, Over200: g.Count(l => l.Lag * 5 > Stopwatch.Frequency)))
            .OrderByDescending(x => x.Max).Take(5).OrderBy(x => x.Second);
        BenchHost.Log("  Worst seconds of the phase (second: events, lags > 200 ms, max): " +
            string.Join("; ", worst.Select(w => FormattableString.Invariant($"{w.Second}: {w.Count}, {w.Over200}, {w.Max:0} ms"))));
    }

    private static async Task<string> CheckpointsAsync(NpgsqlDataSource dataSource, CancellationToken ct)
    {
        await using var command = dataSource.CreateCommand(
            "SELECT format('%s, %s, %s, %s', checkpoints_timed, checkpoints_req, checkpoint_write_time::bigint, checkpoint_sync_time::bigint) FROM pg_stat_bgwriter");
        return (string)(await command.ExecuteScalarAsync(ct))!;
    }
}
