namespace Crm.Contracts;

// Points and tier events of one member account carry Sequence: 1, 2, 3, ... in the order the changes happened,
// one counter per account shared by PointsEarned, PointsDeducted, PointsRedeemed, PointsExpired, PointsClawedBack
// and TierChanged (every ledger entry publishes exactly one points event; a change that moves the tier publishes
// TierChanged right after it, with the next number). The counter is taken under the account's lock in the same
// transaction as the change, so a higher number is always a later state of the account.
//
// These events can arrive out of order (the outbox relay publishes in concurrent batches and retries a failed row
// later; two relay instances interleave). A consumer that keeps an absolute value (Balance, TotalGrowthValue /
// GrowthValue, NewTier) keeps, per customer, the highest Sequence it has taken that value from and ignores the
// absolute values of an event with a lower Sequence: they are stale. Relative values (Points, GrowthValue of the
// change) are facts to be counted once (by message id), whatever their order. A gap in the numbers means an event is
// still on its way. Sequence 0 marks an event published before sequences existed: order it by its timestamp.

/// <summary>Points (and the same growth value, unless GrowthValue says otherwise) were added to a member's account.</summary>
public sealed record PointsEarned(
    Guid CustomerId, long Points, long GrowthValue, string Source, string SourceRef, long Balance, long TotalGrowthValue, DateTimeOffset EarnedAt,
    long Sequence = 0);

/// <summary>
/// An operator took points off an account (a negative AdjustPoints). Points is the positive amount taken; Reason is the
/// adjustment's reason, EntryId the ledger entry. Growth value is untouched (adjustments never change it). Positive
/// adjustments publish PointsEarned with Source "admin".
/// </summary>
public sealed record PointsDeducted(
    Guid CustomerId, long Points, string Reason, long EntryId, long Balance, DateTimeOffset DeductedAt, long Sequence = 0);

/// <summary>Points were spent on a reward or a paid lottery draw (Points is the positive amount spent).</summary>
public sealed record PointsRedeemed(
    Guid CustomerId, long Points, string RewardId, string RedemptionId, long Balance, DateTimeOffset RedeemedAt, long Sequence = 0);

public sealed record PointsExpired(Guid CustomerId, long Points, long Balance, DateTimeOffset ExpiredAt, long Sequence = 0);

/// <summary>A refund took back the points and growth value its order had earned (the balance may go negative).</summary>
public sealed record PointsClawedBack(
    Guid CustomerId, long Points, long GrowthValue, Guid OrderId, string RefundId, long Balance, long TotalGrowthValue, DateTimeOffset ClawedBackAt,
    long Sequence = 0);

/// <summary>
/// Growth value crossed a tier threshold. Reason: order, refund, activity, admin. Sequence follows the points event of
/// the change that moved the tier (see the note at the top of this file).
/// </summary>
public sealed record TierChanged(
    Guid CustomerId, string OldTier, string NewTier, long GrowthValue, string Reason, DateTimeOffset ChangedAt, long Sequence = 0);

public sealed record CouponIssued(
    string Code, Guid CustomerId, string RewardId, decimal FaceValue, decimal Threshold, DateTimeOffset ValidUntil, DateTimeOffset IssuedAt);

public sealed record CouponUsed(string Code, Guid CustomerId, string RewardId, decimal FaceValue, string OrderRef, DateTimeOffset UsedAt);
