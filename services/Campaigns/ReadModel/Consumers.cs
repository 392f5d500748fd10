using Crm.Contracts;
using Crm.Messaging;
using MassTransit;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Crm.Campaigns.ReadModel;

// The analytics read model's consumers. Each runs in the inbox's transaction (a redelivered message id is skipped), and
// each write is idempotent by itself besides (see ReadModelStore), so an order delivered twice counts once either way.

public sealed class CustomerRegisteredConsumer(NpgsqlDataSource dataSource) : InboxConsumer<CustomerRegistered>(dataSource)
{
    protected override Task HandleAsync(ConsumeContext<CustomerRegistered> context, NpgsqlTransaction tx) =>
        ReadModelStore.UpsertProfileAsync(tx.Connection!, tx,
            ReadModelStore.FromSnapshot(context.Message.Customer, context.Message.RegisteredAt.UtcDateTime), context.CancellationToken);
}

public sealed class CustomerUpdatedConsumer(NpgsqlDataSource dataSource) : InboxConsumer<CustomerUpdated>(dataSource)
{
    protected override Task HandleAsync(ConsumeContext<CustomerUpdated> context, NpgsqlTransaction tx) =>
        ReadModelStore.UpsertProfileAsync(tx.Connection!, tx, ReadModelStore.FromSnapshot(context.Message.Customer, null), context.CancellationToken);
}

/// <summary>One OrderPaid at a time: the batch consumer's fallback (see <see cref="OrderPaidBatchConsumer"/>), and usable alone.</summary>
public sealed class OrderPaidConsumer(NpgsqlDataSource dataSource, IOptions<CampaignsOptions> options) : InboxConsumer<OrderPaid>(dataSource)
{
    protected override Task HandleAsync(ConsumeContext<OrderPaid> context, NpgsqlTransaction tx) =>
        ReadModelStore.UpsertOrderAsync(tx.Connection!, tx, ToOrder(context.Message), options.Value.TimeZone, context.CancellationToken);

    public static ReadModelStore.OrderData ToOrder(OrderPaid o) =>
        new(o.OrderId, o.CustomerId, o.ExternalOrderId, o.StoreId, o.Channel, o.AmountPaid, 0, o.PaidAt.UtcDateTime, o.Lines);
}

public sealed class OrderRefundedConsumer(NpgsqlDataSource dataSource, IOptions<CampaignsOptions> options) : InboxConsumer<OrderRefunded>(dataSource)
{
    protected override Task HandleAsync(ConsumeContext<OrderRefunded> context, NpgsqlTransaction tx) =>
        ReadModelStore.ApplyRefundAsync(tx.Connection!, tx, context.Message, options.Value.TimeZone, context.CancellationToken);
}

public sealed class TierChangedConsumer(NpgsqlDataSource dataSource) : InboxConsumer<TierChanged>(dataSource)
{
    protected override Task HandleAsync(ConsumeContext<TierChanged> context, NpgsqlTransaction tx) =>
        ReadModelStore.ApplyTierAsync(tx.Connection!, tx, context.Message, context.CancellationToken);
}

public sealed class PointsEarnedConsumer(NpgsqlDataSource dataSource) : InboxConsumer<PointsEarned>(dataSource)
{
    protected override Task HandleAsync(ConsumeContext<PointsEarned> context, NpgsqlTransaction tx) =>
        ReadModelStore.ApplyPointsAsync(tx.Connection!, tx, context.Message.CustomerId, context.Message.Balance, context.Message.Sequence,
            context.Message.EarnedAt, context.CancellationToken);
}

public sealed class PointsDeductedConsumer(NpgsqlDataSource dataSource) : InboxConsumer<PointsDeducted>(dataSource)
{
    protected override Task HandleAsync(ConsumeContext<PointsDeducted> context, NpgsqlTransaction tx) =>
        ReadModelStore.ApplyPointsAsync(tx.Connection!, tx, context.Message.CustomerId, context.Message.Balance, context.Message.Sequence,
            context.Message.DeductedAt, context.CancellationToken);
}

public sealed class PointsRedeemedConsumer(NpgsqlDataSource dataSource) : InboxConsumer<PointsRedeemed>(dataSource)
{
    protected override Task HandleAsync(ConsumeContext<PointsRedeemed> context, NpgsqlTransaction tx) =>
        ReadModelStore.ApplyPointsAsync(tx.Connection!, tx, context.Message.CustomerId, context.Message.Balance, context.Message.Sequence,
            context.Message.RedeemedAt, context.CancellationToken);
}

public sealed class PointsExpiredConsumer(NpgsqlDataSource dataSource) : InboxConsumer<PointsExpired>(dataSource)
{
    protected override Task HandleAsync(ConsumeContext<PointsExpired> context, NpgsqlTransaction tx) =>
        ReadModelStore.ApplyPointsAsync(tx.Connection!, tx, context.Message.CustomerId, context.Message.Balance, context.Message.Sequence,
            context.Message.ExpiredAt, context.CancellationToken);
}

public sealed class PointsClawedBackConsumer(NpgsqlDataSource dataSource) : InboxConsumer<PointsClawedBack>(dataSource)
{
    protected override Task HandleAsync(ConsumeContext<PointsClawedBack> context, NpgsqlTransaction tx) =>
        ReadModelStore.ApplyPointsAsync(tx.Connection!, tx, context.Message.CustomerId, context.Message.Balance, context.Message.Sequence,
            context.Message.ClawedBackAt, context.CancellationToken);
}
