using Crm.Contracts;
using Crm.Messaging;
using Crm.Messaging.Parking;
using Dapper;
using MassTransit;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Crm.Campaigns.Marketing;

/// <summary>
/// TierChanged in batches: the messages waiting together are decided in one transaction — their inbox ids claimed in one
/// statement, then <see cref="TierWelcome"/> for all of them (one statement per step of the send, not per message) and one
/// commit. The inbox is per message id under <see cref="TierWelcomeConsumer"/>'s name, so a message redelivered alone or in
/// another batch is skipped either way. If the batch fails, each of its messages goes through <see cref="TierWelcomeConsumer"/>
/// on its own (its retries and parking), as does a message replayed from the park.
/// </summary>
public sealed class TierWelcomeBatchConsumer(NpgsqlDataSource dataSource, TierWelcome welcome, Outbox outbox, ILogger<TierWelcomeBatchConsumer> logger, IServiceProvider services)
    : IConsumer<Batch<TierChanged>>
{
    private const string InboxName = nameof(TierWelcomeConsumer);

    public async Task Consume(ConsumeContext<Batch<TierChanged>> context)
    {
        var ct = context.CancellationToken;
        var (together, alone) = InboxBatch.Split(context);
        if (together.Count > 0)
        {
            try
            {
                var watch = System.Diagnostics.Stopwatch.StartNew();
                var sent = await ApplyAsync(together, ct);
                logger.LogDebug("TierChanged batch of {Count} decided in {Milliseconds:0.0} ms: {Sent} sent", together.Count, watch.Elapsed.TotalMilliseconds, sent);
            }
            catch (Exception e) when (!ct.IsCancellationRequested)
            {
                logger.LogWarning("TierChanged batch of {Count} failed ({Error}); applying its messages one by one", together.Count, e.Message);
                alone.InsertRange(0, together);
            }
        }
        var single = new TierWelcomeConsumer(dataSource, welcome, outbox);
        await InboxBatch.OneByOneAsync(alone, single, services);
    }

    private async Task<int> ApplyAsync(IReadOnlyList<ConsumeContext<TierChanged>> messages, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var fresh = await InboxBatch.ClaimAsync(tx, messages, InboxName, ct);
        var sent = await welcome.SendAsync(tx, fresh, ct);
        await tx.CommitAsync(ct);
        if (sent > 0) outbox.Wake();
        return sent;
    }
}

/// <summary>
/// Batches of up to Marketing:TierWelcome:BatchMessageLimit TierChanged, collected for at most BatchTimeLimit after the first,
/// ConcurrentBatches at a time (each holds one pooled connection while it runs).
/// </summary>
public sealed class TierWelcomeBatchConsumerDefinition : ConsumerDefinition<TierWelcomeBatchConsumer>
{
    private readonly IOptions<MarketingOptions> options;

    // The one-by-one consumer's queue: switching batches on or off leaves no queue bound and unread.
    public TierWelcomeBatchConsumerDefinition(IOptions<MarketingOptions> options, IEndpointNameFormatter formatter)
    {
        this.options = options;
        EndpointName = formatter.Consumer<TierWelcomeConsumer>();
    }

    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpoint, IConsumerConfigurator<TierWelcomeBatchConsumer> consumer,
        IRegistrationContext context)
    {
        var o = options.Value.TierWelcome;
        endpoint.PrefetchCount = o.BatchMessageLimit * o.ConcurrentBatches;
        consumer.Options<BatchOptions>(b => b.SetMessageLimit(o.BatchMessageLimit).SetTimeLimit(o.BatchTimeLimit).SetConcurrencyLimit(o.ConcurrentBatches));
    }
}
