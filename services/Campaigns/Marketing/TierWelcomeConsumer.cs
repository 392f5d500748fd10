using Crm.Contracts;
using Crm.Messaging;
using MassTransit;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Crm.Campaigns.Marketing;

/// <summary>
/// One TierChanged at a time (<see cref="TierWelcome"/>), its sends on the inbox's transaction: the message id, the
/// deliveries and their MessageSent commit together, and a failure rolls them all back for the retry. Used with
/// Marketing:TierWelcome:Batches=false, and by <see cref="TierWelcomeBatchConsumer"/> for what it does not take in batches.
/// </summary>
public sealed class TierWelcomeConsumer(NpgsqlDataSource dataSource, TierWelcome welcome, Outbox outbox) : InboxConsumer<TierChanged>(dataSource, outbox)
{
    protected override Task HandleAsync(ConsumeContext<TierChanged> context, NpgsqlTransaction tx) =>
        welcome.SendAsync(tx, [context.Message], context.CancellationToken);
}

/// <summary>The tier-welcome endpoint handles Marketing:TierWelcome:ConcurrentMessageLimit messages at once.</summary>
public sealed class TierWelcomeConsumerDefinition(IOptions<MarketingOptions> options) : ConsumerDefinition<TierWelcomeConsumer>
{
    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpoint, IConsumerConfigurator<TierWelcomeConsumer> consumer,
        IRegistrationContext context)
    {
        var o = options.Value.TierWelcome;
        endpoint.PrefetchCount = o.EffectivePrefetchCount;
        endpoint.ConcurrentMessageLimit = o.ConcurrentMessageLimit;
    }
}
