using Crm.Contracts;
using Crm.Customer.V1;
using Crm.Campaigns.Reports;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Crm.Campaigns.ReadModel;

public enum RebuildPhase { NeverRun, Running, Succeeded, Failed }

public sealed record RebuildState(RebuildPhase Phase, long Run, DateTime? StartedAt, DateTime? FinishedAt, int Customers, int Orders, string? Error);

/// <summary>
/// Rebuilds the read model from the customer service: every customer (SearchCustomers without filters) and every order
/// with its refund total (ExportOrders), page by page, each call with a deadline, upserted through the same idempotent
/// writes the consumers use — so events arriving meanwhile are neither lost nor double counted, and the model keeps
/// updating incrementally afterwards. Tier and points are not in the customer service; they stay as the events left them.
/// One rebuild at a time per instance; it runs in the background and its state is read with GetRebuildStatus.
/// </summary>
public sealed class Rebuilder(
    CustomerService.CustomerServiceClient customers, NpgsqlDataSource dataSource, TimeProvider clock, IHostApplicationLifetime lifetime,
    IOptions<CampaignsOptions> options, ILogger<Rebuilder> logger)
{
    private static readonly TimeSpan CallDeadline = TimeSpan.FromSeconds(30);
    private readonly Lock _gate = new();
    private RebuildState _state = new(RebuildPhase.NeverRun, 0, null, null, 0, 0, null);
    private Task _running = Task.CompletedTask;

    public RebuildState State { get { lock (_gate) return _state; } }

    /// <summary>Starts a rebuild, or returns the one running.</summary>
    public RebuildState Start()
    {
        lock (_gate)
        {
            if (_state.Phase == RebuildPhase.Running) return _state;
            _state = new RebuildState(RebuildPhase.Running, _state.Run + 1, clock.GetUtcNow().UtcDateTime, null, 0, 0, null);
            var run = _state.Run;
            _running = Task.Run(() => RunAsync(run, lifetime.ApplicationStopping));
            return _state;
        }
    }

    /// <summary>For tests and shutdown: the task of the current run.</summary>
    public Task Current { get { lock (_gate) return _running; } }

    private async Task RunAsync(long run, CancellationToken ct)
    {
        int customerCount = 0, orderCount = 0;
        try
        {
            var token = "";
            do
            {
                var page = await customers.SearchCustomersAsync(new SearchCustomersRequest { PageSize = 200, PageToken = token },
                    deadline: DeadlineNow(), cancellationToken: ct);
                await using (var connection = await dataSource.OpenConnectionAsync(ct))
                await using (var tx = await connection.BeginTransactionAsync(ct))
                {
                    foreach (var c in page.Customers)
                        await ReadModelStore.UpsertProfileAsync(connection, tx, ToProfile(c), ct);
                    await tx.CommitAsync(ct);
                }
                customerCount += page.Customers.Count;
                Progress(run, customerCount, orderCount);
                token = page.NextPageToken;
            } while (token.Length > 0);

            token = "";
            do
            {
                var page = await customers.ExportOrdersAsync(new ExportOrdersRequest { PageSize = 500, PageToken = token },
                    deadline: DeadlineNow(), cancellationToken: ct);
                await using (var connection = await dataSource.OpenConnectionAsync(ct))
                await using (var tx = await connection.BeginTransactionAsync(ct))
                {
                    await ReadModelStore.UpsertOrdersAsync(connection, tx, page.Orders.Select(ToOrder).ToList(), options.Value.TimeZone, ct);
                    await tx.CommitAsync(ct);
                }
                orderCount += page.Orders.Count;
                Progress(run, customerCount, orderCount);
                token = page.NextPageToken;
            } while (token.Length > 0);

            // The orders' writes kept their months up to date; a damaged roll-up is recomputed whole all the same.
            await SalesRollup.RefillAsync(dataSource, options.Value.TimeZone, ct);
            Finish(run, RebuildPhase.Succeeded, customerCount, orderCount, null);
            logger.LogInformation("Rebuild {Run} of the analytics read model: {Customers} customers, {Orders} orders", run, customerCount, orderCount);
        }
        catch (Exception ex)
        {
            Finish(run, RebuildPhase.Failed, customerCount, orderCount, ex.Message);
            logger.LogError(ex, "Rebuild {Run} of the analytics read model failed after {Customers} customers, {Orders} orders", run, customerCount, orderCount);
        }
    }

    private DateTime DeadlineNow() => clock.GetUtcNow().UtcDateTime + CallDeadline;

    private void Progress(long run, int customerCount, int orderCount)
    {
        lock (_gate)
            if (_state.Run == run) _state = _state with { Customers = customerCount, Orders = orderCount };
    }

    private void Finish(long run, RebuildPhase phase, int customerCount, int orderCount, string? error)
    {
        lock (_gate)
            if (_state.Run == run)
                _state = _state with { Phase = phase, FinishedAt = clock.GetUtcNow().UtcDateTime, Customers = customerCount, Orders = orderCount, Error = error };
    }

    private static ReadModelStore.Profile ToProfile(Crm.Customer.V1.Customer c)
    {
        var p = c.Profile ?? new CustomerProfile();
        DateOnly? birthday = p.Birthday is { Year: > 0, Month: >= 1 and <= 12, Day: >= 1 } b ? new DateOnly(b.Year, b.Month, Math.Min(b.Day, DateTime.DaysInMonth(b.Year, b.Month))) : null;
        return new ReadModelStore.Profile(Guid.Parse(c.Id), c.Version, c.CreatedAt?.ToDateTime(), birthday,
            string.IsNullOrEmpty(p.Region) ? null : p.Region, string.IsNullOrEmpty(p.City) ? null : p.City, p.Tags.ToList(), p.MarketingConsent);
    }

    private static ReadModelStore.OrderData ToOrder(Order o)
    {
        var paid = o.AmountPaid.TryToDecimal(out var a) ? a : 0;
        var refunded = o.AmountRefunded is not null && o.AmountRefunded.TryToDecimal(out var r) ? r : 0;
        var lines = o.Lines.Select(l => new OrderLineItem(l.Sku, string.IsNullOrEmpty(l.ProductName) ? null : l.ProductName, l.Quantity,
            l.UnitPrice is not null && l.UnitPrice.TryToDecimal(out var u) ? u : 0)).ToList();
        return new ReadModelStore.OrderData(Guid.Parse(o.Id), Guid.Parse(o.CustomerId), o.ExternalOrderId, string.IsNullOrEmpty(o.StoreId) ? null : o.StoreId,
            o.Channel, paid, refunded, o.PaidAt.ToDateTime(), lines);
    }
}
