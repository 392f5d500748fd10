using Crm.Campaigns.Segments;
using Crm.Campaigns.V1;
using Crm.Common.V1;
using Crm.ServiceDefaults.Data;
using Crm.ServiceDefaults.Errors;
using Dapper;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Crm.Campaigns.Marketing;

/// <summary>
/// What a run of a campaign would do now, read-only: the segment's members as the read model has them, minus those without
/// consent, minus the control group (the same hash the dispatcher uses, among those with consent), minus those whose week is used up (the
/// delivery log's sent rows this week, the cap's source of truth); the rest are messages, costed per channel plus the
/// reward's face value each.
/// </summary>
public sealed class Simulation(NpgsqlDataSource db, SegmentStore segments, SegmentAudience audience, FrequencyCap cap, CampaignRewards rewards,
    IOptions<MarketingOptions> options, TimeProvider clock)
{
    public async Task<SimulateCampaignResponse> SimulateAsync(CampaignRow campaign, CancellationToken ct)
    {
        if (campaign.SegmentId is not { } segmentId)
            throw new PreconditionFailedException("CAMPAIGN_NO_SEGMENT", $"campaign/{campaign.CampaignId}",
                "This campaign sends on its event only: it has no segment to simulate over.");
        var filter = audience.Filter(await segments.RequireAsync(segmentId, ct));
        var parameters = new DynamicParameters(filter.Parameters);
        parameters.Add("weekStart", cap.Week(clock.UtcNowForDb()).Start);
        List<(Guid CustomerId, bool Consent, long SentThisWeek)> members;
        await using (var connection = await db.OpenConnectionAsync(ct))
            members = (await connection.QueryAsync<(Guid, bool, long)>(new CommandDefinition($"""
                SELECT c.customer_id, c.marketing_consent,
                       (SELECT count(*) FROM campaign_deliveries d WHERE d.customer_id = c.customer_id AND d.status = 'sent' AND d.at >= @weekStart)
                FROM {filter.From} WHERE {filter.Where}
                """, parameters, commandTimeout: 60, cancellationToken: ct))).ToList();

        var reply = new SimulateCampaignResponse { Audience = members.Count };
        foreach (var m in members)
        {
            if (!m.Consent) reply.NoConsent++;
            else if (ControlGroup.IsHeldOut(campaign.CampaignId, m.CustomerId, campaign.ControlSharePercent)) reply.Control++;
            else if (m.SentThisWeek >= options.Value.FrequencyCapPerWeek) reply.Capped++;
            else reply.Messages++;
        }
        var messageCost = reply.Messages * options.Value.UnitCost.For((CampaignChannel)campaign.Channel);
        var face = 0m;
        if (campaign.RewardId is { } rewardId)
            face = CampaignRewards.Face((await rewards.FindAsync(rewardId, ct)
                ?? throw new PreconditionFailedException("REWARD_MISSING", $"campaign/{campaign.CampaignId}",
                    $"The campaign's reward '{rewardId}' is no longer in the loyalty service.")).Coupon?.FaceValue);
        var rewardCost = reply.Messages * face;
        reply.MessageCost = Money.FromDecimal(messageCost);
        reply.RewardCost = Money.FromDecimal(rewardCost);
        reply.ExpectedCost = Money.FromDecimal(messageCost + rewardCost);
        reply.ExpectedPoints = 0; // a campaign gives coupon rewards only, and a coupon carries no points
        return reply;
    }
}
