using Crm.Contracts;
using Crm.Loyalty.Accounts;
using Crm.Messaging;
using Crm.Messaging.Parking;
using Dapper;
using MassTransit;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Crm.Loyalty.Earning;

/// <summary>
/// OrderPaid in batches: the messages waiting together earn in one transaction (inbox ids claimed in one statement, the
/// members' accounts locked in one, order_earnings in one, then <see cref="Ledger.EarnAllAsync"/>), so a burst of orders
/// costs one commit per batch instead of one per order. Same rules and guards as <see cref="OrderPaidConsumer"/>: the
/// inbox per message id under that consumer's name, order_earnings per order, the ledger's key per entry.
/// If the batch fails, each of its messages goes through <see cref="OrderPaidConsumer"/> on its own (its retries and
/// parking), as does a message replayed from the park.
/// </summary>
public sealed class OrderPaidBatchConsumer(NpgsqlDataSource dataSource, Outbox outbox, Ledger ledger, IServiceProvider services,
    ILogger<OrderPaidBatchConsumer> logger, ILogger<OrderPaidConsumer> singleLogger) : IConsumer<Batch<OrderPaid>>
{
    private const string InboxName = nameof(OrderPaidConsumer);

    public async Task Consume(ConsumeContext<Batch<OrderPaid>> context)
    {
        var ct = context.CancellationToken;
        var (together, alone) = InboxBatch.Split(context);
        if (together.Count > 0)
        {
            try
            {
                await EarnAsync(together, ct);
            }
            catch (Exception e) when (!ct.IsCancellationRequested)
            {
                logger.LogWarning("OrderPaid batch of {Count} failed ({Error}); earning its orders one by one", together.Count, e.Message);
                alone.InsertRange(0, together);
            }
        }
        var single = new OrderPaidConsumer(dataSource, outbox, ledger, singleLogger);
        await InboxBatch.OneByOneAsync(alone, single, services);
    }

    private async Task EarnAsync(IReadOnlyList<ConsumeContext<OrderPaid>> messages, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var orders = await InboxBatch.ClaimAsync(tx, messages, InboxName, ct);
        if (orders.Count > 0)
        {
            var accounts = await ledger.LockAccountsAsync(tx, orders.Select(o => o.CustomerId), ct);
            var first = (await connection.QueryAsync<Guid>(new CommandDefinition("""
                INSERT INTO order_earnings (order_id, customer_id, amount_paid, points_earned)
                SELECT * FROM unnest(@orderIds, @customerIds, @amounts, @points) ON CONFLICT DO NOTHING RETURNING order_id
                """, new
                {
                    orderIds = orders.Select(o => o.OrderId).ToArray(), customerIds = orders.Select(o => o.CustomerId).ToArray(),
                    amounts = orders.Select(o => o.AmountPaid).ToArray(), points = orders.Select(o => OrderPaidConsumer.PointsFor(o.AmountPaid)).ToArray(),
                }, tx, cancellationToken: ct))).ToHashSet();
            // Orders earned before (or twice in this batch under other message ids) earn nothing; nor does an order under 1 yuan.
            var earnings = orders.Where(o => first.Remove(o.OrderId)).Select(o => (o.CustomerId, Change: OrderPaidConsumer.ChangeFor(o)))
                .Where(e => e.Change.Points > 0).ToList();
            await ledger.EarnAllAsync(tx, accounts, earnings, ct);
        }
        await tx.CommitAsync(ct);
        outbox.Wake();
        logger.LogDebug("OrderPaid batch of {Count}: {Orders} orders earned", messages.Count, orders.Count);
    }
}

/// <summary>
/// The batches' size and concurrency (Loyalty:OrderPaidBatches), on the queue OrderPaidConsumer had (loyalty-order-paid):
/// what waits there, and any parked message that names it, is consumed by the batches after an upgrade.
/// </summary>
public sealed class OrderPaidBatchConsumerDefinition : ConsumerDefinition<OrderPaidBatchConsumer>
{
    private readonly OrderPaidBatchOptions _options;

    public OrderPaidBatchConsumerDefinition(IEndpointNameFormatter formatter, IOptions<LoyaltyOptions> options)
    {
        EndpointName = formatter.Consumer<OrderPaidConsumer>();
        _options = options.Value.OrderPaidBatches;
    }

    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpoint, IConsumerConfigurator<OrderPaidBatchConsumer> consumer,
        IRegistrationContext context)
    {
        endpoint.PrefetchCount = _options.MessageLimit * _options.ConcurrencyLimit;
        consumer.Options<BatchOptions>(o => o.SetMessageLimit(_options.MessageLimit).SetTimeLimit(_options.TimeLimit)
            .SetConcurrencyLimit(_options.ConcurrencyLimit));
    }
}
