using Crm.Loyalty.V1;

namespace Crm.Loyalty.Rewards;

/// <summary>What a coupon is worth: face value off orders of at least Threshold (0: no threshold), valid for ValidDays.</summary>
public sealed record CouponTerms(decimal FaceValue, decimal Threshold, int ValidDays);

/// <summary>One line of a lottery's prize table. Stock -1 is unlimited.</summary>
public sealed record PrizeRecord(string Id, string Name, PrizeKind Kind, double Probability, int Stock, long Points, CouponTerms? Coupon);

/// <summary>A catalogue entry. Stock -1 is unlimited; PerMemberLimit 0 is no limit; MinTier "" is everyone.</summary>
public sealed record RewardRecord(
    string Id, string Name, RewardKind Kind, long PointsCost, decimal CashPrice, string MinTier, int PerMemberLimit, int Stock,
    bool Active, CouponTerms? Coupon, int FreeDrawsPerDay, IReadOnlyList<PrizeRecord> Prizes);

/// <summary>A coupon as it stands now: Status is Expired for an issued coupon past ValidUntil.</summary>
public sealed record CouponRecord(
    string Code, Guid CustomerId, string RewardId, decimal FaceValue, decimal Threshold, DateTime ValidFrom, DateTime ValidUntil,
    CouponStatus Status, DateTime? UsedAt, string? UsedOrderRef);

public sealed record RedemptionRecord(
    Guid Id, Guid CustomerId, string RewardId, int Quantity, long PointsSpent, decimal CashDue, IReadOnlyList<CouponRecord> Coupons,
    long BalanceAfter, DateTime RedeemedAt);

public sealed record DrawRecord(
    Guid Id, Guid CustomerId, string RewardId, PrizeRecord Prize, bool FreeDraw, long PointsSpent, CouponRecord? Coupon,
    long BalanceAfter, DateTime DrawnAt);
