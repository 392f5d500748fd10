using Crm.Loyalty.V1;
using Crm.ServiceDefaults.Errors;
using Crm.ServiceDefaults.Security;
using Grpc.Core;

namespace Crm.Loyalty.Grpc;

/// <summary>crm.loyalty.v1.LoyaltyService: one reward of the catalogue, and rewards given without spending points (campaigns).</summary>
public sealed partial class LoyaltyGrpcService
{
    [Allow(Roles.Marketing, Roles.Sales, Roles.Service, Roles.Store, Roles.System)]
    public override async Task<Reward> GetReward(GetRewardRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var rewardId = RewardId(request.RewardId, v);
        v.ThrowIfInvalid();
        return Wire.ToProto(await rewards.GetAsync(rewardId, context.CancellationToken) ?? throw new NotFoundException("reward", rewardId));
    }

    /// <summary>The campaign service calls this as itself (role system); admins may too.</summary>
    [Allow(Roles.System)]
    public override async Task<Coupon> GrantReward(GrantRewardRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var customerId = Ids.Parse(request.CustomerId, "customer_id", v);
        var rewardId = RewardId(request.RewardId, v);
        var key = IdempotencyKey(request.IdempotencyKey, v);
        var reason = request.Reason.Trim();
        v.Require(reason.Length is > 0 and <= 200, "reason", "is required (why the reward is given, e.g. the campaign), at most 200 characters.");
        v.ThrowIfInvalid();

        return Wire.ToProto(await grants.GrantAsync(customerId, rewardId, reason, key, context.CancellationToken));
    }
}
