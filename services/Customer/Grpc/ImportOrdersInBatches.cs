using System.Threading.Channels;
using Crm.Customer.Orders;
using Crm.Customer.V1;
using Crm.ServiceDefaults.Errors;
using Crm.ServiceDefaults.Grpc;
using Crm.ServiceDefaults.Security;
using Crm.ServiceDefaults.Security.Audit;
using Google.Protobuf;
using Grpc.Core;
using Npgsql;

namespace Crm.Customer.Grpc;

/// <summary>
/// ImportOrders in batches: the items that have arrived (up to <see cref="MaxBatch"/>) are checked one by one (a bad
/// item is rejected alone, with the status RecordOrder would give), their customer refs resolved with one lookup,
/// and the valid ones written in one transaction (<see cref="OrderRepository.RecordManyAsync"/>). A second item with
/// an external id already in its batch, and every item of a batch that failed as a whole for an item-level reason
/// (a constraint, a deadlock with a concurrent import), go through RecordOrder's own path one by one afterwards.
/// At most <see cref="BatchesInFlight"/> batches are worked on while the next fills from a bounded buffer; when
/// that is full the stream is not read (HTTP/2 flow control holds the sender back), so memory stays flat.
/// </summary>
public sealed partial class ImportGrpcService
{
    public const int MaxBatch = 500;
    private const int BatchesInFlight = 2;
    private static readonly WriteOptions Buffered = new(WriteFlags.BufferHint);

    private async Task RunInBatchesAsync(IAsyncStreamReader<ImportOrderItem> items, IServerStreamWriter<ImportItemStatus> statuses,
        ServerCallContext context)
    {
        var ct = context.CancellationToken;
        var counts = new Dictionary<ImportOutcome, long>();
        var batchId = "";
        var incoming = Channel.CreateBounded<ImportOrderItem>(new BoundedChannelOptions(MaxBatch) { SingleReader = true, SingleWriter = true });
        var reading = Task.Run(async () =>
        {
            try
            {
                await foreach (var item in items.ReadAllAsync(ct))
                {
                    if (batchId.Length == 0 && item.BatchId.Length > 0) batchId = Echo.Cut(item.BatchId.Trim(), 100);
                    await incoming.Writer.WriteAsync(item, ct);
                }
                incoming.Writer.TryComplete();
            }
            catch (Exception e) { incoming.Writer.TryComplete(e); }
        }, ct);

        // Batches answer in the order they were taken, each with one status per item in item order.
        var slots = new SemaphoreSlim(BatchesInFlight);
        var pending = Channel.CreateUnbounded<Task<ImportItemStatus[]>>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var answering = Task.Run(async () =>
        {
            await foreach (var batch in pending.Reader.ReadAllAsync(ct))
            {
                var answers = await batch;
                for (var i = 0; i < answers.Length; i++)
                {
                    var status = answers[i];
                    counts[status.Outcome] = counts.GetValueOrDefault(status.Outcome) + 1;
                    // A batch's statuses go out together: flushing each would cost an HTTP/2 frame and a wake-up per item on both ends.
                    statuses.WriteOptions = i < answers.Length - 1 ? Buffered : null;
                    await statuses.WriteAsync(status, ct);
                }
                slots.Release();
            }
        }, ct);
        try
        {
            while (await incoming.Reader.WaitToReadAsync(ct))
            {
                await slots.WaitAsync(ct);
                var batch = new List<ImportOrderItem>(MaxBatch);
                while (batch.Count < MaxBatch && incoming.Reader.TryRead(out var item)) batch.Add(item);
                pending.Writer.TryWrite(ImportBatchAsync(context, batch));
            }
        }
        finally
        {
            pending.Writer.TryComplete();
        }
        await answering;
        await reading;
        _logger.LogInformation("Import of orders {Batch} by {Subject} done: {Created} created, {Unchanged} unchanged, {Rejected} rejected",
            batchId.Length > 0 ? batchId : "(no batch id)", context.Caller().Subject, counts.GetValueOrDefault(ImportOutcome.Created),
            counts.GetValueOrDefault(ImportOutcome.Unchanged), counts.GetValueOrDefault(ImportOutcome.Rejected));
    }

    private async Task<ImportItemStatus[]> ImportBatchAsync(ServerCallContext context, IReadOnlyList<ImportOrderItem> items)
    {
        await Task.Yield(); // the loop goes on filling the next batch
        var ct = context.CancellationToken;
        var statuses = items.Select(i => new ImportItemStatus { Line = i.Line }).ToArray();
        var requests = items.Select(i => i.Order ?? new RecordOrderRequest()).ToArray();
        try
        {
            // The same checks and in the same order as the single call: request guard, customer ref, order rules.
            var guarded = new List<int>(items.Count);
            for (var i = 0; i < items.Count; i++)
            {
                try
                {
                    RequestChecks.ThrowIfInvalid(requests[i]);
                    if (requests[i].CustomerRef is { } customerRef) context.RequireSystem(SourceSystem.Normalize(customerRef.System));
                    guarded.Add(i);
                }
                catch (Exception e) { Reject(statuses[i], e, context); }
            }
            var resolved = await partner.ResolveCustomersAsync(guarded.Select(i => requests[i]).ToList(), ct);
            var batch = new List<NewOrder>(guarded.Count);
            var itemOf = new List<int>(guarded.Count);
            var oneByOne = new List<int>();
            var externalIds = new HashSet<string>(StringComparer.Ordinal);
            for (var k = 0; k < guarded.Count; k++)
            {
                var i = guarded[k];
                try
                {
                    if (resolved[k].Error is { } error) throw error;
                    var order = OrderRules.Validate(requests[i], clock, resolved[k].CustomerId);
                    if (externalIds.Add(order.ExternalOrderId))
                    {
                        batch.Add(order);
                        itemOf.Add(i);
                    }
                    else oneByOne.Add(i); // after the batch: it then meets the first one's idempotency
                }
                catch (Exception e) when (e is not OperationCanceledException) { Reject(statuses[i], e, context); }
            }

            // A partner's orders only for customers of its own systems (one lookup for the batch).
            var outside = await scope.OutsideAsync(context, batch.Select(o => o.CustomerId));
            for (var k = batch.Count - 1; k >= 0 && outside.Count > 0; k--)
            {
                if (!outside.Contains(batch[k].CustomerId)) continue;
                Reject(statuses[itemOf[k]], PartnerScope.Denied(), context);
                batch.RemoveAt(k);
                itemOf.RemoveAt(k);
            }

            try
            {
                var idTexts = new string?[batch.Count]; // a created order's id as the audit row and its status both carry it
                var recorded = await orders.RecordManyAsync(batch, (tx, created) => AuditBatch.CopyAsync(tx, context,
                    created.Select(c => ((IMessage)requests[itemOf[c.Index]], idTexts[c.Index] = c.Id.ToString())).ToList(), ct), ct);
                for (var k = 0; k < recorded.Length; k++)
                {
                    var status = statuses[itemOf[k]];
                    if (recorded[k].Error is { } error) Reject(status, error, context);
                    else (status.Id, status.Outcome) = (idTexts[k] ?? recorded[k].Id.ToString(), recorded[k].Created ? ImportOutcome.Created : ImportOutcome.Unchanged);
                }
            }
            catch (PostgresException e) when (e.SqlState[..2] is "23" or "40" or "22")
            {
                _logger.LogInformation("A batch of {Count} orders failed as a whole ({SqlState}); importing them one by one", batch.Count, e.SqlState);
                oneByOne.AddRange(itemOf);
                oneByOne.Sort();
            }
            foreach (var i in oneByOne) statuses[i] = await ImportOneOrderAsync(context, items[i].Line, requests[i]);
        }
        catch (Exception e) when (!ct.IsCancellationRequested)
        {
            // Not any one item's fault (the database is away): every item not yet answered says so.
            foreach (var status in statuses.Where(s => s.Outcome == ImportOutcome.Unspecified)) Reject(status, e, context);
        }
        return statuses;
    }
}
