using Crm.Customer.Orders;
using Crm.Customer.V1;
using Crm.ServiceDefaults.Errors;
using Crm.ServiceDefaults.Grpc;
using Crm.ServiceDefaults.Security;
using System.Threading.Channels;
using Google.Protobuf;
using Grpc.Core;

namespace Crm.Customer.Grpc;

/// <summary>
/// crm.customer.v1.CustomerImport: partners stream customers, orders or refunds in and get one status per item
/// back, in order. Each item goes through exactly what its single call does (checks, idempotency, audit,
/// events); a rejected item is answered with the status that call would have failed with, and the stream
/// goes on. Up to <see cref="InFlight"/> items are worked on at once (two for one external id simply meet its
/// idempotency); the next item is read only when the window has room (back-pressure). Orders go in batches
/// (ImportOrdersInBatches.cs).
/// </summary>
public sealed partial class ImportGrpcService(PartnerRequests partner, PartnerScope scope, OrderRepository orders, TimeProvider clock,
    ILoggerFactory loggers)
    : CustomerImport.CustomerImportBase
{
    private readonly ILogger _logger = loggers.CreateLogger<ImportGrpcService>();
    private readonly ErrorInterceptor _errors = new(loggers.CreateLogger<ErrorInterceptor>());

    [Allow(Roles.Partner, Roles.System)]
    public override Task ImportCustomers(IAsyncStreamReader<ImportCustomerItem> requestStream, IServerStreamWriter<ImportItemStatus> responseStream,
        ServerCallContext context) =>
        RunAsync(requestStream, responseStream, context, "customers", i => (i.BatchId, i.Line, i.Customer ?? new UpsertCustomerRequest()),
            async (request, ct) =>
            {
                if (request.Ref is { } target) context.RequireSystem(SourceSystem.Normalize(target.System));
                var (customer, outcome) = await partner.UpsertAsync(request, ct);
                return (customer.Id.ToString(), outcome switch
                {
                    Customers.UpsertOutcome.Created => ImportOutcome.Created,
                    Customers.UpsertOutcome.Updated => ImportOutcome.Updated,
                    _ => ImportOutcome.Unchanged,
                });
            });

    [Allow(Roles.Partner, Roles.System)]
    public override Task ImportOrders(IAsyncStreamReader<ImportOrderItem> requestStream, IServerStreamWriter<ImportItemStatus> responseStream,
        ServerCallContext context) =>
        RunInBatchesAsync(requestStream, responseStream, context);

    /// <summary>One order through exactly what RecordOrder does: the batches' fallback.</summary>
    private Task<ImportItemStatus> ImportOneOrderAsync(ServerCallContext context, long line, RecordOrderRequest request) =>
        ImportOneAsync(context, line, request, async (r, ct) =>
        {
            if (r.CustomerRef is { } customerRef) context.RequireSystem(SourceSystem.Normalize(customerRef.System));
            var order = OrderRules.Validate(await partner.ResolveAsync(r, ct), clock);
            await scope.RequireLinkedAsync(context, order.CustomerId);
            var (recorded, created) = await orders.RecordAsync(order, ct);
            return (recorded.Id.ToString(), created ? ImportOutcome.Created : ImportOutcome.Unchanged);
        });

    [Allow(Roles.Partner, Roles.System)]
    public override Task ImportRefunds(IAsyncStreamReader<ImportRefundItem> requestStream, IServerStreamWriter<ImportItemStatus> responseStream,
        ServerCallContext context) =>
        RunAsync(requestStream, responseStream, context, "refunds", i => (i.BatchId, i.Line, i.Refund ?? new RefundOrderRequest()),
            async (request, ct) =>
            {
                var refund = OrderRules.Validate(await partner.ResolveAsync(request, ct), clock);
                await scope.RequireOrderLinkedAsync(context, refund.OrderId);
                var (recorded, _, created) = await orders.RefundAsync(refund, ct);
                return (recorded.RefundId, created ? ImportOutcome.Created : ImportOutcome.Unchanged);
            });

    /// <summary>Items worked on at once; their statuses still go out in the order the items came.</summary>
    private const int InFlight = 8;

    private async Task RunAsync<TItem, TRequest>(IAsyncStreamReader<TItem> items, IServerStreamWriter<ImportItemStatus> statuses,
        ServerCallContext context, string what, Func<TItem, (string BatchId, long Line, TRequest Request)> unpack,
        Func<TRequest, CancellationToken, Task<(string Id, ImportOutcome Outcome)>> import)
        where TRequest : IMessage
    {
        var ct = context.CancellationToken;
        var counts = new Dictionary<ImportOutcome, long>();
        var batch = "";
        // A bounded window of items in progress: when it is full the next item is not read, so HTTP/2 flow control
        // holds the sender back and memory stays flat however fast it sends.
        var window = Channel.CreateBounded<Task<ImportItemStatus>>(InFlight - 1);
        var answering = Task.Run(async () =>
        {
            await foreach (var pending in window.Reader.ReadAllAsync(ct))
            {
                var status = await pending;
                counts[status.Outcome] = counts.GetValueOrDefault(status.Outcome) + 1;
                await statuses.WriteAsync(status, ct);
            }
        }, ct);
        try
        {
            await foreach (var item in items.ReadAllAsync(ct))
            {
                var (batchId, line, request) = unpack(item);
                if (batch.Length == 0 && batchId.Length > 0) batch = Echo.Cut(batchId.Trim(), 100);
                await window.Writer.WriteAsync(ImportOneAsync(context, line, request, import), ct);
            }
        }
        finally
        {
            window.Writer.TryComplete();
        }
        await answering;
        _logger.LogInformation("Import of {What} {Batch} by {Subject} done: {Created} created, {Updated} updated, {Unchanged} unchanged, {Rejected} rejected",
            what, batch.Length > 0 ? batch : "(no batch id)", context.Caller().Subject, counts.GetValueOrDefault(ImportOutcome.Created),
            counts.GetValueOrDefault(ImportOutcome.Updated), counts.GetValueOrDefault(ImportOutcome.Unchanged), counts.GetValueOrDefault(ImportOutcome.Rejected));
    }

    private async Task<ImportItemStatus> ImportOneAsync<TRequest>(ServerCallContext context, long line, TRequest request,
        Func<TRequest, CancellationToken, Task<(string Id, ImportOutcome Outcome)>> import) where TRequest : IMessage
    {
        await Task.Yield(); // the reader goes on to the next item
        var status = new ImportItemStatus { Line = line };
        try
        {
            // The same checks the single call gets from the RequestGuard, on the same message, so the field paths match.
            RequestChecks.ThrowIfInvalid(request);
            using (ServiceDefaults.Security.Audit.Audit.Begin(context, request))
                (status.Id, status.Outcome) = await import(request, context.CancellationToken);
        }
        catch (Exception e) when (!context.CancellationToken.IsCancellationRequested)
        {
            Reject(status, e, context);
        }
        return status;
    }

    /// <summary>The status the single call would have failed with.</summary>
    private void Reject(ImportItemStatus status, Exception e, ServerCallContext context)
    {
        var rejected = e as RpcException ?? _errors.Translate(e, context);
        status.Outcome = ImportOutcome.Rejected;
        status.Id = "";
        status.Error = rejected.GetRpcStatus() ?? new Google.Rpc.Status { Code = (int)rejected.StatusCode, Message = rejected.Status.Detail };
    }
}
