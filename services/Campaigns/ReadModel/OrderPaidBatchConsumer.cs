using Crm.Contracts;
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
        var messages = context.Message.ToList();
        var alone = messages.Where(m => m.MessageId is null || m.Headers.TryGetHeader(ParkedMessages.ReplayHeader, out _)).ToList();
        var together = messages.Except(alone).ToList();
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
        foreach (var message in alone)
        {
            // A message inside a batch lacks the scope's services, which the one-by-one consumer needs to park a message
            // that keeps failing; without them it throws and the whole batch goes to MassTransit's retries, then _error.
            message.GetOrAddPayload(() => services);
            await single.Consume(message);
        }
    }

    private async Task ApplyAsync(IReadOnlyList<ConsumeContext<OrderPaid>> messages, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var claimed = (await connection.QueryAsync<Guid>(new CommandDefinition("""
            INSERT INTO inbox_messages (message_id, consumer) SELECT id, @consumer FROM unnest(@ids) AS id ORDER BY id ON CONFLICT DO NOTHING RETURNING message_id
            """, new { ids = messages.Select(m => m.MessageId!.Value).Distinct().ToArray(), consumer = InboxName }, tx, cancellationToken: ct))).ToHashSet();
        // Sorted: two batches sharing a message id wait on each other in one order; an id twice in one batch is applied once.
        var fresh = messages.Where(m => claimed.Remove(m.MessageId!.Value)).Select(m => OrderPaidConsumer.ToOrder(m.Message)).ToList();
        await ReadModelStore.UpsertOrdersAsync(connection, tx, fresh, options.Value.TimeZone, ct);
        await tx.CommitAsync(ct);
    }
}

/// <summary>Batches of up to 100 OrderPaid, collected for at most 5 ms after the first, four batches at a time (one stalled commit does not hold up the rest).</summary>
public sealed class OrderPaidBatchConsumerDefinition : ConsumerDefinition<OrderPaidBatchConsumer>
{
    // The one-by-one consumer's queue: switching batches on or off leaves no queue bound and unread.
    public OrderPaidBatchConsumerDefinition(IEndpointNameFormatter formatter) => EndpointName = formatter.Consumer<OrderPaidConsumer>();

    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpoint, IConsumerConfigurator<OrderPaidBatchConsumer> consumer,
        IRegistrationContext context)
    {
        endpoint.PrefetchCount = OrderPaidBatchConsumer.MessageLimit * OrderPaidBatchConsumer.ConcurrencyLimit;
        consumer.Options<BatchOptions>(o => o.SetMessageLimit(OrderPaidBatchConsumer.MessageLimit).SetTimeLimit(TimeSpan.FromMilliseconds(5))
            .SetConcurrencyLimit(OrderPaidBatchConsumer.ConcurrencyLimit));
    }
}
