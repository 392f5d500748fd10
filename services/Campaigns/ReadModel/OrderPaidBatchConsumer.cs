using Crm.Contracts;
using Crm.Messaging;
using Crm.Messaging.Parking;
using Dapper;
using MassTransit;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Crm.Campaigns.ReadModel;

/// <summary>
/// OrderPaid in batches: up to <see cref="MessageLimit"/> messages that are waiting together are applied in one
/// transaction (the inbox ids claimed in one statement, the orders, lines and roll-up months in three more), so a burst
/// costs one commit per batch instead of one per order. The inbox is still per message id and under the single consumer's
/// name, so a message redelivered alone or in another batch is skipped either way.
/// If the batch fails, each of its messages goes through <see cref="OrderPaidConsumer"/> on its own (its retries and
/// parking), as does a message replayed from the park.
/// </summary>
public sealed class OrderPaidBatchConsumer(NpgsqlDataSource dataSource, IOptions<CampaignsOptions> options, ILogger<OrderPaidBatchConsumer> logger, IServiceProvider services)
    : IConsumer<Batch<OrderPaid>>
{
    public const int MessageLimit = 100;
    public const int ConcurrencyLimit = 4;
    private const string InboxName = nameof(OrderPaidConsumer);

    public async Task Consume(ConsumeContext<Batch<OrderPaid>> context)
    {
        var ct = context.CancellationToken;
        var (together, alone) = InboxBatch.Split(context);
        var single = new OrderPaidConsumer(dataSource, options);
        if (together.Count > 0)
        {
            try
            {
                var watch = System.Diagnostics.Stopwatch.StartNew();
                await ApplyAsync(together, ct);
                logger.LogDebug("OrderPaid batch of {Count} applied in {Milliseconds:0.0} ms", together.Count, watch.Elapsed.TotalMilliseconds);
            }
            catch (Exception e) when (!ct.IsCancellationRequested)
            {
                logger.LogWarning("OrderPaid batch of {Count} failed ({Error}); applying its messages one by one", together.Count, e.Message);
                alone.InsertRange(0, together);
            }
        }
        await InboxBatch.OneByOneAsync(alone, single, services);
    }

    private async Task ApplyAsync(IReadOnlyList<ConsumeContext<OrderPaid>> messages, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var fresh = (await InboxBatch.ClaimAsync(tx, messages, InboxName, ct)).Select(OrderPaidConsumer.ToOrder).ToList();
        await ReadModelStore.UpsertOrdersAsync(connection, tx, fresh, options.Value.TimeZone, ct);
        await tx.CommitAsync(ct);
    }
}

/// <summary>
/// Batches of up to 100 OrderPaid, collected for at most <see cref="CampaignsOptions.OrderPaidBatchTimeLimit"/> after the first,
/// four batches at a time (one stalled commit does not hold up the rest).
/// </summary>
public sealed class OrderPaidBatchConsumerDefinition : ConsumerDefinition<OrderPaidBatchConsumer>
{
    // The one-by-one consumer's queue: switching batches on or off leaves no queue bound and unread.
    public OrderPaidBatchConsumerDefinition(IEndpointNameFormatter formatter) => EndpointName = formatter.Consumer<OrderPaidConsumer>();

    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpoint, IConsumerConfigurator<OrderPaidBatchConsumer> consumer,
        IRegistrationContext context)
    {
        endpoint.PrefetchCount = OrderPaidBatchConsumer.MessageLimit * OrderPaidBatchConsumer.ConcurrencyLimit;
        var timeLimit = context.GetRequiredService<IOptions<CampaignsOptions>>().Value.OrderPaidBatchTimeLimit;
        consumer.Options<BatchOptions>(o => o.SetMessageLimit(OrderPaidBatchConsumer.MessageLimit).SetTimeLimit(timeLimit)
            .SetConcurrencyLimit(OrderPaidBatchConsumer.ConcurrencyLimit));
    }
}
