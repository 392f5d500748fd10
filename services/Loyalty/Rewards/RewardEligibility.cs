using Crm.Loyalty.Accounts;
using Crm.ServiceDefaults.Errors;

namespace Crm.Loyalty.Rewards;

/// <summary>Whether a member may take a reward now: active, tier high enough, under the per-member limit.</summary>
public static class RewardEligibility
{
    /// <param name="taken">How many of this reward the member has already had (units redeemed, or draws).</param>
    public static void Ensure(RewardRecord reward, AccountRecord account, TierTable tiers, long taken, int quantity)
    {
        var subject = $"rewards/{reward.Id}";
        if (!reward.Active)
            throw new PreconditionFailedException("REWARD_INACTIVE", subject, $"Reward '{reward.Id}' is not active.");
        if (reward.MinTier.Length > 0 && tiers.Rank(account.Tier) < tiers.Rank(reward.MinTier))
            throw new PreconditionFailedException("TIER_TOO_LOW", subject,
                $"Reward '{reward.Id}' is for tier {reward.MinTier} and above; customer {account.CustomerId} is {account.Tier}.");
        if (reward.PerMemberLimit > 0 && taken + quantity > reward.PerMemberLimit)
            throw new PreconditionFailedException("LIMIT_REACHED", subject,
                $"Reward '{reward.Id}' is limited to {reward.PerMemberLimit} per member; customer {account.CustomerId} has had {taken}" +
                (quantity > 1 ? $" and asked for {quantity} more." : "."));
    }

    public static PreconditionFailedException OutOfStock(string rewardId) =>
        new("OUT_OF_STOCK", $"rewards/{rewardId}", $"Reward '{rewardId}' is out of stock.");
}
