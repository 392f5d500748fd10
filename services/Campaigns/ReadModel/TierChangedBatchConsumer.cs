using Crm.Contracts;
using Crm.Messaging;
using Crm.Messaging.Parking;
using Dapper;
using MassTransit;
using Npgsql;

namespace Crm.Campaigns.ReadModel;

/// <summary>
/// TierChanged into the read model in batches, like <see cref="OrderPaidBatchConsumer"/>: the messages waiting together are
/// claimed in the inbox in one statement (per message id, under <see cref="TierChangedConsumer"/>'s name) and their tiers
/// written in one more, one commit per batch instead of one per event. A burst of upgrades is what a tier-welcome campaign
/// answers, so this consumer competes with its sends for the same cores and commits. If the batch fails, each of its
/// messages goes through <see cref="TierChangedConsumer"/> on its own (its retries and parking), as does a replayed one.
/// </summary>
public sealed class TierChangedBatchConsumer(NpgsqlDataSource dataSource, ILogger<TierChangedBatchConsumer> logger, IServiceProvider services) : IConsumer<Batch<TierChanged>>
{
    public const int MessageLimit = 100;
    public const int ConcurrencyLimit = 2;
    private const string InboxName = nameof(TierChangedConsumer);

    public async Task Consume(ConsumeContext<Batch<TierChanged>> context)
    {
        var ct = context.CancellationToken;
        var (together, alone) = InboxBatch.Split(context);
        if (together.Count > 0)
        {
            try { await ApplyAsync(together, ct); }
            catch (Exception e) when (!ct.IsCancellationRequested)
            {
                logger.LogWarning("TierChanged batch of {Count} failed ({Error}); applying its messages one by one", together.Count, e.Message);
                alone.InsertRange(0, together);
            }
        }
        var single = new TierChangedConsumer(dataSource);
        await InboxBatch.OneByOneAsync(alone, single, services);
    }

    private async Task ApplyAsync(IReadOnlyList<ConsumeContext<TierChanged>> messages, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var fresh = await InboxBatch.ClaimAsync(tx, messages, InboxName, ct);
        await ReadModelStore.ApplyTiersAsync(connection, tx, fresh, ct);
        await tx.CommitAsync(ct);
    }
}

/// <summary>Batches of up to 100 TierChanged, collected for at most 10 ms after the first, two batches at a time.</summary>
public sealed class TierChangedBatchConsumerDefinition : ConsumerDefinition<TierChangedBatchConsumer>
{
    // The one-by-one consumer's queue: switching batches on or off leaves no queue bound and unread.
    public TierChangedBatchConsumerDefinition(IEndpointNameFormatter formatter) => EndpointName = formatter.Consumer<TierChangedConsumer>();

    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpoint, IConsumerConfigurator<TierChangedBatchConsumer> consumer,
        IRegistrationContext context)
    {
        endpoint.PrefetchCount = TierChangedBatchConsumer.MessageLimit * TierChangedBatchConsumer.ConcurrencyLimit;
        consumer.Options<BatchOptions>(o => o.SetMessageLimit(TierChangedBatchConsumer.MessageLimit).SetTimeLimit(TimeSpan.FromMilliseconds(10))
            .SetConcurrencyLimit(TierChangedBatchConsumer.ConcurrencyLimit));
    }
}
