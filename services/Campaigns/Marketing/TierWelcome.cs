using Crm.Campaigns.Segments;
using Crm.Campaigns.V1;
using Crm.Contracts;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Crm.Campaigns.Marketing;

/// <summary>
/// TierChanged to a higher tier → every running tier-welcome campaign sends to the customer, once per campaign, customer and
/// tier reached (the occurrence is the new tier): a TierChanged delivered three times sends once. A campaign with a segment
/// sends only to its members. Many events are decided together on the caller's transaction: the running campaigns read
/// once, each segment's membership in one statement, the sends through the dispatcher's set-based path.
/// </summary>
public sealed class TierWelcome(CampaignDispatcher dispatcher, SegmentAudience audience, IOptions<CampaignsOptions> options)
{
    /// <returns>How many messages were sent (the caller commits, then wakes the outbox when any were).</returns>
    public async Task<int> SendAsync(NpgsqlTransaction tx, IReadOnlyList<TierChanged> events, CancellationToken ct)
    {
        var order = options.Value.TierOrder;
        var upgrades = events.Where(e =>
        {
            var from = Array.IndexOf(order, e.OldTier);
            return from >= 0 && Array.IndexOf(order, e.NewTier) > from; // not an upgrade, or from no tier at all: nothing to send
        }).ToList();
        if (upgrades.Count == 0) return 0;
        var requests = new List<SendRequest>();
        foreach (var campaign in await CampaignStore.RunningAsync(tx, CampaignKind.TierWelcome, ct))
        {
            var members = campaign.SegmentId is { } segment
                ? await audience.MembersAmongAsync(tx, segment, upgrades.Select(e => e.CustomerId).Distinct().ToArray(), ct)
                : null;
            requests.AddRange(upgrades.Where(e => members is null || members.Contains(e.CustomerId))
                .Select(e => new SendRequest(campaign, e.CustomerId, "tier:" + e.NewTier, e.NewTier)));
        }
        if (requests.Count == 0) return 0;
        return (await dispatcher.SendAsync(tx, requests, ct)).Count(o => o == SendOutcome.Sent);
    }
}
