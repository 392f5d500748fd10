namespace Crm.Contracts;

/// <summary>Points (and the same growth value, unless GrowthValue says otherwise) were added to a member's account.</summary>
public sealed record PointsEarned(
    Guid CustomerId, long Points, long GrowthValue, string Source, string SourceRef, long Balance, long TotalGrowthValue, DateTimeOffset EarnedAt);

public sealed record PointsRedeemed(
    Guid CustomerId, long Points, string RewardId, string RedemptionId, long Balance, DateTimeOffset RedeemedAt);

public sealed record PointsExpired(Guid CustomerId, long Points, long Balance, DateTimeOffset ExpiredAt);

/// <summary>A refund took back the points and growth value its order had earned (the balance may go negative).</summary>
public sealed record PointsClawedBack(
    Guid CustomerId, long Points, long GrowthValue, Guid OrderId, string RefundId, long Balance, long TotalGrowthValue, DateTimeOffset ClawedBackAt);

/// <summary>Growth value crossed a tier threshold. Reason: order, refund, activity, admin.</summary>
public sealed record TierChanged(
    Guid CustomerId, string OldTier, string NewTier, long GrowthValue, string Reason, DateTimeOffset ChangedAt);

public sealed record CouponIssued(
    string Code, Guid CustomerId, string RewardId, decimal FaceValue, decimal Threshold, DateTimeOffset ValidUntil, DateTimeOffset IssuedAt);

public sealed record CouponUsed(string Code, Guid CustomerId, string RewardId, decimal FaceValue, string OrderRef, DateTimeOffset UsedAt);
