using Crm.Common.V1;
using Crm.Loyalty.Rewards;
using Crm.Loyalty.V1;
using Terms = Crm.Loyalty.Rewards.CouponTerms;

namespace Crm.Loyalty.Grpc;

/// <summary>Rewards, coupons, redemptions and draws to protobuf messages.</summary>
internal static partial class Wire
{
    public static Reward ToProto(RewardRecord r)
    {
        var reward = new Reward
        {
            Id = r.Id, Name = r.Name, Kind = r.Kind, PointsCost = r.PointsCost,
            CashPrice = r.Kind == RewardKind.PointsAndCash ? Money.FromDecimal(r.CashPrice) : null,
            MinTier = r.MinTier, PerMemberLimit = r.PerMemberLimit, Stock = r.Stock, Active = r.Active,
            Coupon = r.Coupon is null ? null : ToProto(r.Coupon), FreeDrawsPerDay = r.FreeDrawsPerDay,
        };
        reward.Prizes.AddRange(r.Prizes.Select(ToProto));
        return reward;
    }

    public static Prize ToProto(PrizeRecord p) => new()
    {
        Id = p.Id, Name = p.Name, Kind = p.Kind, Probability = p.Probability, Stock = p.Stock, Points = p.Points,
        Coupon = p.Coupon is null ? null : ToProto(p.Coupon),
    };

    public static V1.CouponTerms ToProto(Terms t) => new()
    {
        FaceValue = Money.FromDecimal(t.FaceValue), Threshold = Money.FromDecimal(t.Threshold), ValidDays = t.ValidDays,
    };

    public static Coupon ToProto(CouponRecord c) => new()
    {
        Code = c.Code, CustomerId = c.CustomerId.ToString(), RewardId = c.RewardId, FaceValue = Money.FromDecimal(c.FaceValue),
        Threshold = Money.FromDecimal(c.Threshold), ValidFrom = Utc(c.ValidFrom), ValidUntil = Utc(c.ValidUntil), Status = c.Status,
        UsedAt = c.UsedAt is { } used ? Utc(used) : null, UsedOrderRef = c.UsedOrderRef ?? "",
    };

    public static Redemption ToProto(RedemptionRecord r)
    {
        var redemption = new Redemption
        {
            Id = r.Id.ToString(), CustomerId = r.CustomerId.ToString(), RewardId = r.RewardId, Quantity = r.Quantity,
            PointsSpent = r.PointsSpent, CashDue = Money.FromDecimal(r.CashDue), BalanceAfter = r.BalanceAfter, RedeemedAt = Utc(r.RedeemedAt),
        };
        redemption.Coupons.AddRange(r.Coupons.Select(ToProto));
        return redemption;
    }

    public static DrawResult ToProto(DrawRecord d) => new()
    {
        Id = d.Id.ToString(), Prize = ToProto(d.Prize), FreeDraw = d.FreeDraw, PointsSpent = d.PointsSpent,
        Coupon = d.Coupon is null ? null : ToProto(d.Coupon), BalanceAfter = d.BalanceAfter,
    };
}
