using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Crm.Campaigns.V1;
using Crm.ServiceDefaults.Errors;
using Crm.Loyalty.V1;
using Dapper;
using Grpc.Core;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Crm.Campaigns.Marketing;

/// <summary>
/// A campaign's coupon, issued by the loyalty service (GrantReward: no points spent) with a deadline and an idempotency
/// key derived from campaign + customer + occurrence, so a retried send — after a timeout whose grant did go through —
/// gets the same coupon back, never a second one. The code is recorded with the delivery for attribution.
/// </summary>
public sealed partial class CampaignRewards(LoyaltyService.LoyaltyServiceClient loyalty, IOptions<MarketingOptions> options, TimeProvider clock,
    ILogger<CampaignRewards> logger)
{
    public static string IdempotencyKey(Guid campaignId, Guid customerId, string occurrence) =>
        "campaign-reward:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"{campaignId:N}|{customerId:N}|{occurrence}")));

    /// <returns>
    /// Each send's coupon code (the grants asked in parallel, the codes recorded in one statement), or null where the loyalty
    /// service refused, failed or did not answer in time (that send is deferred).
    /// </returns>
    public async Task<string?[]> IssueAsync(NpgsqlTransaction tx, IReadOnlyList<SendRequest> sends, CancellationToken ct)
    {
        if (sends.Count == 0) return [];
        var coupons = await Task.WhenAll(sends.Select(s => GrantAsync(s.Campaign, s.CustomerId, s.Occurrence, ct)));
        var issued = sends.Select((s, k) => (Send: s, Coupon: coupons[k])).Where(x => x.Coupon is not null).ToList();
        if (issued.Count > 0)
            await tx.Connection!.ExecuteAsync(new CommandDefinition("""
                INSERT INTO campaign_coupons (campaign_id, customer_id, occurrence, code, reward_id, face_value, issued_at)
                SELECT c.*, @now FROM unnest(@campaigns::uuid[], @customers::uuid[], @occurrences::text[], @codes::text[], @rewards::text[], @faces::numeric[]) AS c
                ON CONFLICT DO NOTHING
                """, new
                {
                    campaigns = issued.Select(x => x.Send.Campaign.CampaignId).ToArray(), customers = issued.Select(x => x.Send.CustomerId).ToArray(),
                    occurrences = issued.Select(x => x.Send.Occurrence).ToArray(), codes = issued.Select(x => x.Coupon!.Code).ToArray(),
                    rewards = issued.Select(x => x.Send.Campaign.RewardId!).ToArray(), faces = issued.Select(x => Face(x.Coupon!.FaceValue)).ToArray(),
                    now = clock.GetUtcNow().UtcDateTime,
                }, tx, cancellationToken: ct));
        return coupons.Select(c => c?.Code).ToArray();
    }

    private async Task<Coupon?> GrantAsync(CampaignRow campaign, Guid customerId, string occurrence, CancellationToken ct)
    {
        try
        {
            return await loyalty.GrantRewardAsync(new GrantRewardRequest
            {
                CustomerId = customerId.ToString(), RewardId = campaign.RewardId!, Reason = $"campaign {campaign.CampaignId}",
                IdempotencyKey = IdempotencyKey(campaign.CampaignId, customerId, occurrence),
            }, deadline: DateTime.UtcNow.Add(options.Value.LoyaltyCallTimeout), cancellationToken: ct);
        }
        catch (RpcException e)
        {
            logger.LogWarning("Campaign message deferred: the loyalty service answered {Status} to the coupon grant.", e.StatusCode);
            return null;
        }
    }

    public sealed record Giving(string? RewardId, int ControlSharePercent, int AttributionWindowDays);

    /// <summary>Checks what a new campaign gives and how it is measured: the reward must be a coupon reward the loyalty service has.</summary>
    public async Task<Giving> ValidateAsync(CreateCampaignRequest request, Validator v, CancellationToken ct)
    {
        v.Require(request.ControlSharePercent is >= 0 and <= 50, "control_share_percent",
            $"must be between 0 and 50 (percent of the audience held out); got {request.ControlSharePercent}.");
        var window = request.HasAttributionWindowDays ? request.AttributionWindowDays : 14;
        v.Require(window is >= 1 and <= 365, "attribution_window_days", $"must be between 1 and 365 days (14 when not set); got {window}.");
        var rewardId = request.RewardId.Trim();
        if (rewardId.Length == 0)
        {
            if (request.Template.Contains("{coupon}", StringComparison.Ordinal))
                v.Add("template", "uses {coupon} but the campaign gives no coupon: set reward_id.");
            return new Giving(null, request.ControlSharePercent, window);
        }
        if (!RewardIdFormat().IsMatch(rewardId)) v.Add("reward_id", "must be a loyalty reward id (1-64 of a-z, 0-9, '-', '_').");
        else if (await FindAsync(rewardId, ct) is not { } reward) v.Add("reward_id", $"the loyalty service has no reward '{Echo.Cut(rewardId)}'.");
        else if (reward.Kind != RewardKind.Coupon) v.Add("reward_id", $"'{rewardId}' is not a coupon reward: a campaign gives coupons only.");
        else if (!reward.Active) v.Add("reward_id", $"'{rewardId}' is not active in the loyalty service.");
        return new Giving(rewardId, request.ControlSharePercent, window);
    }

    [GeneratedRegex("^[a-z0-9_-]{1,64}$")]
    private static partial Regex RewardIdFormat();

    public static decimal Face(Crm.Common.V1.Money? money) => money is not null && money.TryToDecimal(out var value) ? value : 0m;

    /// <summary>The reward as the loyalty service has it now; null when it has no such reward.</summary>
    public async Task<Reward?> FindAsync(string rewardId, CancellationToken ct)
    {
        try
        {
            return await loyalty.GetRewardAsync(new GetRewardRequest { RewardId = rewardId },
                deadline: DateTime.UtcNow.Add(options.Value.LoyaltyCallTimeout), cancellationToken: ct);
        }
        catch (RpcException e) when (e.StatusCode is StatusCode.NotFound or StatusCode.InvalidArgument)
        {
            return null;
        }
    }
}
