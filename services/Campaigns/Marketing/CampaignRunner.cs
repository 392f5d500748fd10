using Crm.Campaigns.Segments;
using Crm.Campaigns.V1;

namespace Crm.Campaigns.Marketing;

/// <summary>
/// One occurrence of a campaign over its segment (RunCampaign and the scheduler): the audience of the occurrence is frozen
/// once (a snapshot keyed by campaign and occurrence, so a retried run goes over the same customers; consent is checked per
/// send), then every member gets the send; deferred sends of the occurrence are tried again.
/// </summary>
public sealed class CampaignRunner(SegmentStore segments, SegmentAudience audience, CampaignDispatcher dispatcher)
{
    private const int PageSize = 500;

    public async Task<RunCampaignResponse> RunAsync(CampaignRow campaign, Guid segmentId, string occurrence, CancellationToken ct)
    {
        var snapshot = await audience.SnapshotAsync(segmentId, $"campaign {campaign.CampaignId} {occurrence}",
            $"campaign:{campaign.CampaignId}:{occurrence}", ct);
        var reply = new RunCampaignResponse();
        var after = Guid.Empty;
        while (true)
        {
            var page = await segments.SnapshotMembersAsync(snapshot.SnapshotId, after, PageSize, ct);
            foreach (var customerId in page) Count(reply, await dispatcher.SendAsync(campaign, customerId, occurrence, null, ct));
            if (page.Count < PageSize) break;
            after = page[^1];
        }
        return reply;
    }

    private static void Count(RunCampaignResponse reply, SendOutcome outcome)
    {
        switch (outcome)
        {
            case SendOutcome.Sent: reply.Sent++; break;
            case SendOutcome.Duplicate: reply.Duplicate++; break;
            case SendOutcome.NoConsent: reply.NoConsent++; break;
            case SendOutcome.Capped: reply.Capped++; break;
            case SendOutcome.Control: reply.Control++; break;
            default: reply.Deferred++; break;
        }
    }
}
