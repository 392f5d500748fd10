using Crm.Contracts;
using Crm.Messaging;
using Dapper;
using MassTransit;
using Npgsql;

namespace Crm.Campaigns.Marketing;

/// <summary>Keeps the coupons used at the till (any coupon; a campaign's are those in campaign_coupons), for the campaigns' reward cost.</summary>
public sealed class CouponUsedConsumer(NpgsqlDataSource dataSource) : InboxConsumer<CouponUsed>(dataSource)
{
    protected override Task HandleAsync(ConsumeContext<CouponUsed> context, NpgsqlTransaction tx)
    {
        var e = context.Message;
        return tx.Connection!.ExecuteAsync(new CommandDefinition("""
            INSERT INTO coupon_uses (code, customer_id, reward_id, face_value, order_ref, used_at)
            VALUES (@Code, @CustomerId, @RewardId, @FaceValue, @OrderRef, @usedAt)
            ON CONFLICT (code) DO NOTHING
            """, new { e.Code, e.CustomerId, e.RewardId, e.FaceValue, e.OrderRef, usedAt = e.UsedAt.UtcDateTime }, tx,
            cancellationToken: context.CancellationToken));
    }
}
