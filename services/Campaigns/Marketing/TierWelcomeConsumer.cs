using Crm.Campaigns.Segments;
using Crm.Campaigns.V1;
using Crm.Contracts;
using Crm.Messaging;
using MassTransit;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Crm.Campaigns.Marketing;

/// <summary>
/// TierChanged to a higher tier → every running tier-welcome campaign sends to the customer, once per campaign, customer and
/// tier reached (the occurrence is the new tier): a TierChanged delivered three times sends once. A campaign with a segment
/// sends only to its members. The sends run on their own transactions; the delivery log's key keeps a redelivery from
/// sending twice.
/// </summary>
public sealed class TierWelcomeConsumer(NpgsqlDataSource dataSource, CampaignStore campaigns, CampaignDispatcher dispatcher, SegmentAudience audience,
    IOptions<CampaignsOptions> options) : InboxConsumer<TierChanged>(dataSource)
{
    protected override async Task HandleAsync(ConsumeContext<TierChanged> context, NpgsqlTransaction tx)
    {
        var e = context.Message;
        var order = options.Value.TierOrder;
        var from = Array.IndexOf(order, e.OldTier);
        if (from < 0 || Array.IndexOf(order, e.NewTier) <= from) return; // not an upgrade (or from no tier at all)
        var ct = context.CancellationToken;
        foreach (var campaign in await campaigns.RunningAsync(CampaignKind.TierWelcome, ct))
        {
            if (campaign.SegmentId is { } segment && !await audience.ContainsAsync(segment, e.CustomerId, ct)) continue;
            await dispatcher.SendAsync(campaign, e.CustomerId, "tier:" + e.NewTier, e.NewTier, ct);
        }
    }
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
