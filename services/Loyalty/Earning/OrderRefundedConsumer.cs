using Crm.Contracts;
using Crm.Loyalty.Accounts;
using Crm.Messaging;
using Dapper;
using MassTransit;
using Npgsql;

namespace Crm.Loyalty.Earning;

/// <summary>
/// A refund takes back points and growth value so that the order keeps exactly floor(paid − refunded):
/// claw-back = points earned − floor(amount paid − total refunded) − points already clawed back.
/// Working from the running total makes partial, repeated and out-of-order refunds exact.
/// </summary>
public sealed class OrderRefundedConsumer(NpgsqlDataSource dataSource, Outbox outbox, Ledger ledger, ILogger<OrderRefundedConsumer> logger)
    : InboxConsumer<OrderRefunded>(dataSource, outbox)
{
    public static long ClawBackFor(long pointsEarned, long alreadyClawed, decimal amountPaid, decimal totalRefunded) =>
        Math.Max(0, pointsEarned - (long)decimal.Floor(Math.Max(0, amountPaid - totalRefunded)) - alreadyClawed);

    protected override async Task HandleAsync(ConsumeContext<OrderRefunded> context, NpgsqlTransaction tx)
    {
        var refund = context.Message;
        var ct = context.CancellationToken;
        var account = await ledger.LockAccountAsync(tx, refund.CustomerId, ct);
        var earning = await tx.Connection!.QuerySingleOrDefaultAsync<EarningRow>(new CommandDefinition(
            "SELECT points_earned, points_clawed FROM order_earnings WHERE order_id = @OrderId FOR UPDATE",
            new { refund.OrderId }, tx, cancellationToken: ct))
            // The refund overtook its OrderPaid (they travel on different queues): fail, and the retry finds it.
            ?? throw new InvalidOperationException($"Refund {refund.RefundId} arrived before order {refund.OrderId} was earned; will retry.");

        var claw = ClawBackFor(earning.PointsEarned, earning.PointsClawed, refund.AmountPaid, refund.TotalRefunded);
        if (claw == 0) return;

        await tx.Connection!.ExecuteAsync(new CommandDefinition(
            "UPDATE order_earnings SET points_clawed = points_clawed + @claw WHERE order_id = @OrderId",
            new { claw, refund.OrderId }, tx, cancellationToken: ct));
        var (_, after) = await ledger.ClawBackAsync(tx, account, new Change(EntryKind.ClawBack, "refund", refund.RefundId, -claw, -claw,
            $"refund:{refund.RefundId}", $"Refund of {refund.Amount:0.00} on order {refund.ExternalOrderId}",
            OrderId: refund.OrderId, RefundId: refund.RefundId), ct);
        logger.LogInformation("Refund {RefundId} clawed back {Points} points from {CustomerId}; balance {Balance}, growth {Growth}, tier {Tier}",
            refund.RefundId, claw, refund.CustomerId, after.Balance, after.GrowthValue, after.Tier);
    }

    private sealed record EarningRow(long PointsEarned, long PointsClawed);
}
