namespace Crm.Loyalty.Accounts;

public enum EntryKind : short
{
    Earn = 1,
    Redeem = 2,
    Expire = 3,
    Adjust = 4,
    ClawBack = 5,
}

public sealed record AccountRecord(
    Guid CustomerId, long Balance, long GrowthValue, string Tier, int CheckInStreak, DateOnly? LastCheckIn, DateTime OpenedAt);

public sealed record LedgerEntryRecord(
    long Id, Guid CustomerId, EntryKind Kind, string Source, string SourceRef, long Points, long GrowthValue,
    long BalanceAfter, string? Note, DateTime CreatedAt);

/// <summary>
/// One change to an account. Points and GrowthValue are signed. The idempotency key makes a retried change a
/// no-op that returns the first entry. OrderId ties earnings and claw-backs to the order's own lot.
/// </summary>
public sealed record Change(
    EntryKind Kind, string Source, string SourceRef, long Points, long GrowthValue, string IdempotencyKey,
    string? Note = null, Guid? OrderId = null, string? RefundId = null);
