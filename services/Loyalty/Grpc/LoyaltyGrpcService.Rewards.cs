using Crm.Common.V1;
using Crm.Loyalty.Rewards;
using Crm.Loyalty.V1;
using Crm.ServiceDefaults.Errors;
using Crm.ServiceDefaults.Paging;
using Crm.ServiceDefaults.Security;
using Grpc.Core;

namespace Crm.Loyalty.Grpc;

/// <summary>crm.loyalty.v1.LoyaltyService, second half: the rewards catalogue, redemptions, lottery draws and coupons.</summary>
public sealed partial class LoyaltyGrpcService
{
    [Allow(Roles.Marketing)]
    public override async Task<Reward> UpsertReward(UpsertRewardRequest request, ServerCallContext context)
    {
        var reward = RewardRules.Validate(request.Reward, tiers);
        return Wire.ToProto(await rewards.UpsertAsync(reward, context.CancellationToken));
    }

    [Allow(Roles.Marketing)]
    public override async Task<Reward> AdjustRewardStock(AdjustRewardStockRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var rewardId = RewardId(request.RewardId, v);
        var prizeId = request.PrizeId.Trim();
        v.Require(prizeId.Length <= 64, "prize_id", "must be at most 64 characters (empty for the reward's own stock).");
        v.Require(request.Delta != 0 && Math.Abs((long)request.Delta) <= 1_000_000, "delta",
            "must be non-zero and within ±1,000,000: positive restocks, negative writes off.");
        var key = IdempotencyKey(request.IdempotencyKey, v);
        v.ThrowIfInvalid();

        return Wire.ToProto(await rewards.AdjustStockAsync(rewardId, prizeId, request.Delta, key, context.CancellationToken));
    }

    [Allow(Roles.Marketing, Roles.Sales, Roles.Service, Roles.Store, Roles.Member)]
    public override async Task<ListRewardsResponse> ListRewards(ListRewardsRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var customerId = request.CustomerId.Length == 0 ? (Guid?)null : Ids.Parse(request.CustomerId, "customer_id", v);
        var pageSize = PageToken.PageSize(request.PageSize, v);
        var filters = $"customer={customerId}";
        var after = PageToken.Decode(request.PageToken, filters, v) ?? "";
        v.ThrowIfInvalid();
        if (customerId is { } self) context.RequireSelf(self);

        string[]? allowedTiers = null;
        if (customerId is { } id)
        {
            // A member without an account yet is at the lowest tier (accounts open on first use).
            var account = await queries.GetAsync(id, context.CancellationToken);
            var rank = tiers.Rank(account?.Tier ?? tiers.For(0).Code);
            allowedTiers = tiers.Tiers.Take(rank + 1).Select(t => t.Code).ToArray();
        }
        var page = await rewards.ListAsync(after, allowedTiers, pageSize + 1, context.CancellationToken);
        var response = new ListRewardsResponse();
        response.Rewards.AddRange(page.Take(pageSize).Select(Wire.ToProto));
        if (page.Count > pageSize) response.NextPageToken = PageToken.Encode(page[pageSize - 1].Id, filters);
        return response;
    }

    [Allow(Roles.Service, Roles.Member)]
    public override async Task<Redemption> Redeem(RedeemRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var customerId = Ids.Parse(request.CustomerId, "customer_id", v);
        var rewardId = RewardId(request.RewardId, v);
        v.Require(request.Quantity is >= 0 and <= 100, "quantity", $"must be between 1 and 100 (0 means 1); got {request.Quantity}.");
        var key = IdempotencyKey(request.IdempotencyKey, v);
        v.ThrowIfInvalid();
        context.RequireSelf(customerId);

        var quantity = request.Quantity == 0 ? 1 : request.Quantity;
        return Wire.ToProto(await redemptions.RedeemAsync(customerId, rewardId, quantity, key, context.CancellationToken));
    }

    [Allow(Roles.Member)]
    public override async Task<DrawResult> Draw(DrawRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var customerId = Ids.Parse(request.CustomerId, "customer_id", v);
        var rewardId = RewardId(request.RewardId, v);
        var key = IdempotencyKey(request.IdempotencyKey, v);
        v.ThrowIfInvalid();
        context.RequireSelf(customerId);

        return Wire.ToProto(await draws.DrawAsync(customerId, rewardId, key, context.CancellationToken));
    }

    [Allow(Roles.Service, Roles.Store, Roles.Member)]
    public override async Task<ValidateCouponResponse> ValidateCoupon(ValidateCouponRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var code = CouponCode(request.Code, v);
        var amount = RewardRules.Amount(request.OrderAmount, "order_amount", v, required: true, allowZero: false);
        var customerId = request.CustomerId.Length == 0 ? (Guid?)null : Ids.Parse(request.CustomerId, "customer_id", v);
        v.ThrowIfInvalid();
        context.RequireSelf(customerId);

        var check = await coupons.ValidateAsync(code, amount!.Value, customerId, context.CancellationToken);
        return new ValidateCouponResponse
        {
            Valid = check.Valid, Reason = check.Reason, Coupon = Wire.ToProto(check.Coupon), Discount = Money.FromDecimal(check.Discount),
        };
    }

    [Allow(Roles.Store)]
    public override async Task<Coupon> UseCoupon(UseCouponRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var code = CouponCode(request.Code, v);
        var amount = RewardRules.Amount(request.OrderAmount, "order_amount", v, required: true, allowZero: false);
        var orderRef = request.OrderRef.Trim();
        v.Require(orderRef.Length is > 0 and <= 100, "order_ref", "is required (the till's order reference), at most 100 characters.");
        var customerId = request.CustomerId.Length == 0 ? (Guid?)null : Ids.Parse(request.CustomerId, "customer_id", v);
        v.ThrowIfInvalid();

        return Wire.ToProto(await coupons.UseAsync(code, amount!.Value, orderRef, customerId, context.CancellationToken));
    }

    private static string RewardId(string value, Validator v)
    {
        var id = value.Trim();
        v.Require(id.Length is > 0 and <= 64, "reward_id", "is required, at most 64 characters.");
        return id;
    }

    private static string IdempotencyKey(string value, Validator v)
    {
        var key = value.Trim();
        v.Require(key.Length is > 0 and <= 100, "idempotency_key", "is required (at most 100 characters), so a retried call is applied once.");
        return key;
    }

    private static string CouponCode(string value, Validator v)
    {
        var code = CouponCodes.Normalize(value);
        v.Require(code.Length is > 0 and <= 32, "code", "is required, at most 32 characters.");
        return code;
    }
}
