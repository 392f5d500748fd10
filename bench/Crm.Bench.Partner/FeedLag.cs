using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using Crm.Changes.V1;
using Crm.Customer.V1;
using Grpc.Core;

namespace Crm.Bench.Partner;

public sealed record FeedLagResult(
    string Source, double TargetRate, double AchievedRate, int Sent, int SendErrors, int Delivered, int Duplicates, bool AllArrived,
    Latency LagFromReturn, Latency LagFromCallStart, Latency RecordOrderLatency, int DeliveredBeforeReturn, CpuUsage Cpu, string? FirstError);

/// <summary>
/// Change-feed delivery lag: one WatchChanges subscriber (OrderPaid only) from the feed's current end while orders are
/// recorded on a fixed schedule (open loop: a slow call does not delay the next), by RecordOrder calls or items of one
/// ImportOrders stream; each delivered event is matched to its order by external order id. Lag = delivery − the
/// call's return or the item's status (the commit happened before either), and − its start.
/// </summary>
public sealed class FeedLag : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, long> _arrivals = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _reading;
    private int _duplicates;

    private FeedLag(ChangeFeed.ChangeFeedClient feed, string fromToken, string prefix)
    {
        _reading = Task.Run(async () =>
        {
            using var call = feed.WatchChanges(new WatchChangesRequest { FromToken = fromToken, EventTypes = { "OrderPaid" } }, cancellationToken: _stop.Token);
            try
            {
                await foreach (var e in call.ResponseStream.ReadAllAsync(_stop.Token))
                {
                    var now = Stopwatch.GetTimestamp();
                    using var json = JsonDocument.Parse(e.Json);
                    if (json.RootElement.GetProperty("externalOrderId").GetString() is { } id && id.StartsWith(prefix, StringComparison.Ordinal)
                        && !_arrivals.TryAdd(id, now))
                        Interlocked.Increment(ref _duplicates);
                }
            }
            catch (Exception) when (_stop.IsCancellationRequested) { /* done */ }
            catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled) { /* done */ }
        });
    }

    public static FeedLag Start(ChangeFeed.ChangeFeedClient feed, string fromToken, string prefix) => new(feed, fromToken, prefix);

    public int Count => _arrivals.Count;

    /// <param name="import">When given, the orders go through one ImportOrders stream, one item sent on each tick, and "returned"
    /// is when its status came back (after its batch committed); otherwise one RecordOrder call per tick.</param>
    public static async Task<FeedLagResult> MeasureAsync(CustomerService.CustomerServiceClient customers, CustomerImport.CustomerImportClient? import,
        ChangeFeed.ChangeFeedClient feed, string fromToken, Func<int, string, RecordOrderRequest> order, string prefix, double rate, double seconds,
        double waitSeconds, CpuMeter cpu, CancellationToken ct)
    {
        await using var lag = Start(feed, fromToken, prefix);
        var total = (int)Math.Round(rate * seconds);
        var started = new long[total];
        var returned = new long[total];
        var ok = new bool[total];
        string? firstError = null;
        var interval = Stopwatch.Frequency / rate;
        var before = cpu.Snapshot();
        var t0 = Stopwatch.GetTimestamp();
        var calls = new List<Task>(total);

        async Task One(int i)
        {
            started[i] = Stopwatch.GetTimestamp();
            try
            {
                await customers.RecordOrderAsync(order(i, prefix + i), deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: ct);
                ok[i] = true;
            }
            catch (RpcException e) { Interlocked.CompareExchange(ref firstError, e.Status.ToString(), null); }
            returned[i] = Stopwatch.GetTimestamp();
        }

        double sendSeconds;
        if (import is null)
        {
            for (var next = 0; next < total;)
            {
                var now = Stopwatch.GetTimestamp();
                while (next < total && t0 + (long)(next * interval) <= now) calls.Add(One(next++));
                if (next < total) await Task.Delay(1, ct);
            }
            sendSeconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            await Task.WhenAll(calls);
        }
        else
        {
            using var call = import.ImportOrders(cancellationToken: ct);
            var receiving = Task.Run(async () =>
            {
                await foreach (var status in call.ResponseStream.ReadAllAsync(ct))
                {
                    var i = (int)status.Line - 1;
                    returned[i] = Stopwatch.GetTimestamp();
                    ok[i] = status.Outcome == ImportOutcome.Created;
                    if (!ok[i]) Interlocked.CompareExchange(ref firstError, $"line {status.Line}: {status.Outcome} {status.Error?.Message}", null);
                }
            }, ct);
            for (var next = 0; next < total;)
            {
                var now = Stopwatch.GetTimestamp();
                while (next < total && t0 + (long)(next * interval) <= now)
                {
                    started[next] = Stopwatch.GetTimestamp();
                    await call.RequestStream.WriteAsync(new ImportOrderItem { BatchId = prefix, Line = next + 1, Order = order(next, prefix + next) }, ct);
                    next++;
                }
                if (next < total) await Task.Delay(1, ct);
            }
            sendSeconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            await call.RequestStream.CompleteAsync();
            await receiving;
        }
        var sentOk = ok.Count(x => x);
        var wait = Stopwatch.StartNew();
        while (lag.Count < sentOk && wait.Elapsed.TotalSeconds < waitSeconds) await Task.Delay(20, ct);
        var usage = cpu.Snapshot() - before;

        var fromReturn = new List<long>(total);
        var fromStart = new List<long>(total);
        var callTicks = new List<long>(total);
        var early = 0;
        for (var i = 0; i < total; i++)
        {
            if (!ok[i]) continue;
            callTicks.Add(returned[i] - started[i]);
            if (!lag._arrivals.TryGetValue(prefix + i, out var arrived)) continue;
            if (arrived < returned[i]) early++;
            fromReturn.Add(Math.Max(0, arrived - returned[i]));
            fromStart.Add(arrived - started[i]);
        }
        return new FeedLagResult(import is null ? "RecordOrder" : "ImportOrders", rate, total / sendSeconds, total, total - sentOk, fromReturn.Count, lag._duplicates, fromReturn.Count == sentOk,
            Latency.FromTicks(fromReturn), Latency.FromTicks(fromStart), Latency.FromTicks(callTicks), early, usage, firstError);
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try { await _reading; }
        catch (Exception) { /* stopping */ }
        _stop.Dispose();
    }
}
