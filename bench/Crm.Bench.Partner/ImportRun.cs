using System.Diagnostics;
using Crm.Customer.V1;
using Grpc.Core;

namespace Crm.Bench.Partner;

/// <summary>One second of the stream: the process's memory and how far the sender was ahead of the statuses.</summary>
public sealed record MemorySample(double Second, long ManagedHeapBytes, long HeapAfterLastGcBytes, long RssBytes, long Sent, long Answered)
{
    /// <summary>Items sent whose status has not come back: what sits in HTTP/2 buffers and the service's batches.</summary>
    public long InFlight => Sent - Answered;
}

public sealed record ImportResult(
    long Sent, long Created, long Unchanged, long Rejected, double Seconds, double OrdersPerSecond, bool InOrder, string? FirstRejection,
    CpuUsage Cpu, IReadOnlyList<MemorySample> Memory, MemoryVerdict Flatness);

/// <summary>
/// Max of RSS and of the heap after the last GC (what survived: the raw managed heap also counts garbage not yet
/// collected, a sawtooth) in the first and in the second half of the stream; flat when the second is within 25% of the first.
/// </summary>
public sealed record MemoryVerdict(long RssFirstHalf, long RssSecondHalf, long HeapFirstHalf, long HeapSecondHalf, long MaxInFlight)
{
    public const double Tolerance = 1.25;
    public double RssRatio => RssFirstHalf > 0 ? (double)RssSecondHalf / RssFirstHalf : double.NaN;
    public double HeapRatio => HeapFirstHalf > 0 ? (double)HeapSecondHalf / HeapFirstHalf : double.NaN;
    public bool Flat => RssRatio <= Tolerance && HeapRatio <= Tolerance;

    public static MemoryVerdict Of(IReadOnlyList<MemorySample> samples)
    {
        var half = samples.Count / 2;
        var first = samples.Take(Math.Max(1, half)).ToList();
        var second = samples.Skip(half).ToList();
        if (second.Count == 0) second = first;
        return new MemoryVerdict(first.Max(s => s.RssBytes), second.Max(s => s.RssBytes),
            first.Max(s => s.HeapAfterLastGcBytes), second.Max(s => s.HeapAfterLastGcBytes), samples.Count == 0 ? 0 : samples.Max(s => s.InFlight));
    }
}

/// <summary>
/// Streams every generated order through one ImportOrders call: the sender writes the next item as soon as the
/// previous write is accepted (HTTP/2 flow control is the only brake: items are generated lazily, nothing is queued
/// in the bench), the receiver reads the statuses as they come and checks they come one per item, in order.
/// </summary>
public static class ImportRun
{
    public static async Task<ImportResult> RunAsync(CustomerImport.CustomerImportClient client, OrderGenerator generator, Guid[] customerIds,
        string batchId, CpuMeter cpu, CancellationToken ct)
    {
        long sent = 0, answered = 0, created = 0, unchanged = 0, rejected = 0;
        var inOrder = true;
        string? firstRejection = null;
        var samples = new List<MemorySample>();
        using var sampling = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var watch = Stopwatch.StartNew();
        var sampler = Task.Run(async () =>
        {
            using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
            try
            {
                while (await timer.WaitForNextTickAsync(sampling.Token))
                {
                    using var self = Process.GetCurrentProcess();
                    lock (samples)
                        samples.Add(new MemorySample(watch.Elapsed.TotalSeconds, GC.GetTotalMemory(false), GC.GetGCMemoryInfo().HeapSizeBytes,
                            self.WorkingSet64, Interlocked.Read(ref sent), Interlocked.Read(ref answered)));
                }
            }
            catch (OperationCanceledException) { /* the stream ended */ }
        }, CancellationToken.None);

        var before = cpu.Snapshot();
        using (var call = client.ImportOrders(cancellationToken: ct))
        {
            var sending = Task.Run(async () =>
            {
                foreach (var order in generator.All())
                {
                    await call.RequestStream.WriteAsync(OrderGenerator.Item(order, batchId, customerIds), ct);
                    Interlocked.Increment(ref sent);
                }
                await call.RequestStream.CompleteAsync();
            }, ct);
            long expected = 1;
            await foreach (var status in call.ResponseStream.ReadAllAsync(ct))
            {
                if (status.Line != expected++) inOrder = false;
                switch (status.Outcome)
                {
                    case ImportOutcome.Created: created++; break;
                    case ImportOutcome.Unchanged: unchanged++; break;
                    default:
                        rejected++;
                        firstRejection ??= $"line {status.Line}: {status.Error?.Code} {status.Error?.Message}";
                        break;
                }
                Interlocked.Increment(ref answered);
            }
            await sending;
        }
        var seconds = watch.Elapsed.TotalSeconds;
        var usage = cpu.Snapshot() - before;
        await sampling.CancelAsync();
        await sampler;
        List<MemorySample> memory;
        lock (samples) memory = [.. samples];
        return new ImportResult(sent, created, unchanged, rejected, seconds, answered / seconds, inOrder && answered == sent, firstRejection,
            usage, memory, MemoryVerdict.Of(memory));
    }
}
