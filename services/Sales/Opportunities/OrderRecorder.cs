using Crm.Common.V1;
using Crm.Customer.V1;
using Crm.ServiceDefaults.Data;
using Dapper;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Crm.Sales.Opportunities;

/// <summary>Wakes the recorder when a receipt completes a deal, so the order goes out at once rather than at the next poll.</summary>
public sealed class OrderRecorderSignal
{
    private readonly SemaphoreSlim _semaphore = new(0, 1);

    public void Set()
    {
        try { _semaphore.Release(); }
        catch (SemaphoreFullException) { }
    }

    public Task<bool> WaitAsync(TimeSpan timeout, CancellationToken ct) => _semaphore.WaitAsync(timeout, ct);
}

/// <summary>
/// Records each fully paid opportunity as one order in the customer service. The obligation is a row state
/// (order_status = 'pending', written with the completing receipt), and this loop retries it with growing delays
/// until RecordOrder succeeds. RecordOrder is idempotent by external order id SALES-&lt;opportunity id&gt;, so a call
/// that succeeded but whose answer was lost, a second instance, or a crash between call and update never records twice.
/// Each row is leased (its next attempt pushed a minute ahead) before the call, so two instances rarely call together.
/// After Sales:OrderMaxAttempts failures the row is parked (order_status 'parked', the last error kept) and logged as an
/// error saying how to retry it; the loop no longer calls for it, so a deal the customer service refuses for good (an
/// unknown customer, a rejected amount) does not hammer it forever. RetryOrder (<see cref="ParkedOrders"/>) puts it back to 'pending'.
/// </summary>
public sealed class OrderRecorder(
    NpgsqlDataSource dataSource, CustomerService.CustomerServiceClient customers, OrderRecorderSignal signal,
    IOptions<SalesOptions> options, TimeProvider clock, ILogger<OrderRecorder> logger) : BackgroundService
{
    public static string ExternalOrderId(Guid opportunityId) => $"SALES-{opportunityId}";

    private sealed record Due(Guid Id, Guid CustomerId, string Title, string? ProductInterest, decimal Amount, int OrderAttempts, DateTime LastPaidAt, string Methods);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await RunOnceAsync(stoppingToken);
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                logger.LogWarning(ex, "Order recording round failed; retrying at the next poll");
            }
            try { await signal.WaitAsync(options.Value.OrderPollInterval, stoppingToken); }
            catch (OperationCanceledException) { return; }
        }
    }

    /// <returns>How many orders were recorded in this round.</returns>
    public async Task<int> RunOnceAsync(CancellationToken ct)
    {
        var now = clock.UtcNowForDb();
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        var due = (await connection.QueryAsync<Due>(new CommandDefinition("""
            WITH claimed AS (
                SELECT id FROM opportunities WHERE order_status = 'pending' AND order_next_attempt <= @now
                ORDER BY order_next_attempt LIMIT 20 FOR UPDATE SKIP LOCKED)
            UPDATE opportunities o SET order_next_attempt = @lease FROM claimed WHERE o.id = claimed.id
            RETURNING o.id, o.customer_id, o.title, o.product_interest, o.amount, o.order_attempts,
                (SELECT max(paid_at) FROM receipts r WHERE r.opportunity_id = o.id) AS last_paid_at,
                (SELECT string_agg(DISTINCT method, '+' ORDER BY method) FROM receipts r WHERE r.opportunity_id = o.id) AS methods
            """, new { now, lease = now.AddMinutes(1) }, cancellationToken: ct))).ToList();
        var recorded = 0;
        foreach (var d in due)
        {
            var amount = Money.FromDecimal(d.Amount);
            var request = new RecordOrderRequest
            {
                CustomerId = d.CustomerId.ToString(), ExternalOrderId = ExternalOrderId(d.Id), Channel = "sales",
                AmountPaid = amount, PaymentMethod = d.Methods.Length <= 100 ? d.Methods : "mixed",
                PaidAt = Timestamp.FromDateTime(DateTime.SpecifyKind(d.LastPaidAt, DateTimeKind.Utc)),
            };
            request.Lines.Add(new OrderLine
            {
                Sku = "SALES-DEAL", ProductName = Cut(d.ProductInterest ?? d.Title, 200), Quantity = 1, UnitPrice = amount,
            });
            try
            {
                var order = await customers.RecordOrderAsync(request, deadline: DateTime.UtcNow + options.Value.CustomerCallTimeout, cancellationToken: ct);
                await connection.ExecuteAsync(new CommandDefinition("""
                    UPDATE opportunities SET order_status = 'recorded', order_id = @orderId, order_attempts = order_attempts + 1,
                        order_last_error = NULL, order_next_attempt = NULL
                    WHERE id = @id AND order_status = 'pending'
                    """, new { id = d.Id, orderId = Guid.Parse(order.Id) }, cancellationToken: ct));
                recorded++;
                logger.LogInformation("Recorded opportunity {OpportunityId} as order {OrderId} in the customer service", d.Id, order.Id);
            }
            catch (RpcException ex) when (!ct.IsCancellationRequested)
            {
                var attempt = d.OrderAttempts + 1;
                var error = $"{ex.StatusCode}: {Cut(ex.Status.Detail, 500)}";
                if (attempt >= options.Value.OrderMaxAttempts)
                {
                    await connection.ExecuteAsync(new CommandDefinition("""
                        UPDATE opportunities SET order_status = 'parked', order_attempts = order_attempts + 1, order_last_error = @error,
                            order_next_attempt = NULL
                        WHERE id = @id AND order_status = 'pending'
                        """, new { id = d.Id, error }, cancellationToken: ct));
                    logger.LogError(
                        "Order for opportunity {OpportunityId} (customer {CustomerId}, {Amount} yuan, external order id {ExternalOrderId}) parked after " +
                        "{Attempts} failed RecordOrder calls (last: {Error}); the customer is paid up but has no order (no loyalty points) until " +
                        "it is recorded. Fix the cause, then retry it with RetryOrder (admin) or in salesdb: {Retry} (a retry never records it twice)",
                        d.Id, d.CustomerId, d.Amount, ExternalOrderId(d.Id), attempt, error,
                        $"UPDATE opportunities SET order_status = 'pending', order_attempts = 0, order_next_attempt = now() WHERE id = '{d.Id}'");
                    continue;
                }
                var delay = TimeSpan.FromSeconds(Math.Min(options.Value.OrderMaxBackoff.TotalSeconds, Math.Pow(2, Math.Min(d.OrderAttempts, 20))));
                await connection.ExecuteAsync(new CommandDefinition("""
                    UPDATE opportunities SET order_attempts = order_attempts + 1, order_last_error = @error, order_next_attempt = @next
                    WHERE id = @id AND order_status = 'pending'
                    """, new { id = d.Id, error, next = clock.UtcNowForDb() + delay },
                    cancellationToken: ct));
                var level = ex.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded ? LogLevel.Warning : LogLevel.Error;
                logger.Log(level, "Recording opportunity {OpportunityId} as an order failed ({Status}); attempt {Attempt} of {MaxAttempts}, next in {Delay}",
                    d.Id, ex.StatusCode, attempt, options.Value.OrderMaxAttempts, delay);
            }
        }
        return recorded;
    }

    private static string Cut(string value, int max) => value.Length <= max ? value : value[..max];
}
