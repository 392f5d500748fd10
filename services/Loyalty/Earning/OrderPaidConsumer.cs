using Crm.Contracts;
using Crm.Loyalty.Accounts;
using Crm.Messaging;
using Dapper;
using MassTransit;
using Npgsql;

namespace Crm.Loyalty.Earning;

/// <summary>
/// A paid order earns floor(amount paid in yuan) points and the same growth value: 10,000.50 yuan earns 10,000.
/// Earned once per order, however often the event is delivered (inbox, order_earnings and the ledger key each
/// guard it).
/// </summary>
public sealed class OrderPaidConsumer(NpgsqlDataSource dataSource, Outbox outbox, Ledger ledger, ILogger<OrderPaidConsumer> logger)
    : InboxConsumer<OrderPaid>(dataSource, outbox)
{
    public static long PointsFor(decimal amountPaid) => (long)decimal.Floor(amountPaid);

    /// <summary>The ledger entry an order earns: its points as growth value too, keyed by the order so it is written once.</summary>
    public static Change ChangeFor(OrderPaid order)
    {
        var points = PointsFor(order.AmountPaid);
        return new Change(EntryKind.Earn, "order", order.OrderId.ToString(), points, points,
            $"order:{order.OrderId}", $"Order {order.ExternalOrderId} paid {order.AmountPaid:0.00}", OrderId: order.OrderId);
    }

    protected override async Task HandleAsync(ConsumeContext<OrderPaid> context, NpgsqlTransaction tx)
    {
        var order = context.Message;
        var ct = context.CancellationToken;
        var account = await ledger.LockAccountAsync(tx, order.CustomerId, ct);
        var points = PointsFor(order.AmountPaid);

        var first = await tx.Connection!.ExecuteAsync(new CommandDefinition("""
            INSERT INTO order_earnings (order_id, customer_id, amount_paid, points_earned)
            VALUES (@OrderId, @CustomerId, @AmountPaid, @points) ON CONFLICT DO NOTHING
            """, new { order.OrderId, order.CustomerId, order.AmountPaid, points }, tx, cancellationToken: ct)) == 1;
        if (!first || points == 0) return;

        var (_, after) = await ledger.EarnAsync(tx, account, ChangeFor(order), ct);
        logger.LogInformation("Customer {CustomerId} earned {Points} points for order {OrderId}; balance {Balance}, growth {Growth}, tier {Tier}",
            order.CustomerId, points, order.OrderId, after.Balance, after.GrowthValue, after.Tier);
    }
}
