using Crm.Contracts;
using Crm.ServiceDefaults.Data;
using Crm.ServiceDefaults.Errors;
using Crm.Messaging;
using Dapper;
using Npgsql;

namespace Crm.Loyalty.Accounts;

/// <summary>
/// Every change of points and growth value goes through here, inside the caller's transaction and under the
/// account's row lock: the ledger entry, the account's balance, growth value and tier, the point lots and the
/// events (through the outbox) are written together or not at all.
/// </summary>
public sealed class Ledger(Outbox outbox, TierTable tiers, BrandCalendar calendar, TimeProvider clock)
{
    private const string AccountColumns = "customer_id, balance, growth_value, tier, check_in_streak, last_check_in, opened_at";
    private const string EntryColumns = "id, customer_id, kind, source, source_ref, points, growth_value, balance_after, note, created_at";

    /// <summary>Locks the member's account for the rest of the transaction; NOT_FOUND when it was never opened.</summary>
    public async Task<AccountRecord> LockExistingAccountAsync(NpgsqlTransaction tx, Guid customerId, CancellationToken ct) =>
        await SelectForUpdateAsync(tx, customerId, ct) ?? throw new Crm.ServiceDefaults.Errors.NotFoundException("account", customerId.ToString());

    /// <summary>Locks the member's account for the rest of the transaction, opening it on first use (events, operators).</summary>
    public async Task<AccountRecord> LockAccountAsync(NpgsqlTransaction tx, Guid customerId, CancellationToken ct)
    {
        var account = await SelectForUpdateAsync(tx, customerId, ct);
        if (account is not null) return account;
        var now = clock.UtcNowForDb();
        await tx.Connection!.ExecuteAsync(new CommandDefinition(
            "INSERT INTO accounts (customer_id, tier, opened_at, updated_at) VALUES (@customerId, @tier, @now, @now) ON CONFLICT DO NOTHING",
            new { customerId, tier = tiers.For(0).Code, now }, tx, cancellationToken: ct));
        return (await SelectForUpdateAsync(tx, customerId, ct))!;
    }

    public static async Task<AccountRecord?> GetAccountAsync(NpgsqlConnection connection, Guid customerId, CancellationToken ct)
    {
        var row = await connection.QuerySingleOrDefaultAsync<AccountRow>(new CommandDefinition(
            $"SELECT {AccountColumns} FROM accounts WHERE customer_id = @customerId", new { customerId }, cancellationToken: ct));
        return row?.ToRecord();
    }

    /// <summary>The entry an idempotency key already produced, if any (call it with the account locked).</summary>
    public static async Task<LedgerEntryRecord?> FindEntryAsync(NpgsqlTransaction tx, string idempotencyKey, CancellationToken ct)
    {
        var row = await tx.Connection!.QuerySingleOrDefaultAsync<EntryRow>(new CommandDefinition(
            $"SELECT {EntryColumns} FROM ledger_entries WHERE idempotency_key = @idempotencyKey", new { idempotencyKey }, tx, cancellationToken: ct));
        return row?.ToRecord();
    }

    /// <summary>Adds points (and growth value). A negative balance — refunded points already spent — is repaid first.</summary>
    public async Task<(LedgerEntryRecord Entry, AccountRecord Account)> EarnAsync(NpgsqlTransaction tx, AccountRecord account, Change change, CancellationToken ct)
    {
        if (change.Points <= 0) throw new ArgumentOutOfRangeException(nameof(change), "Earnings are positive.");
        var debt = Math.Max(0, -account.Balance);
        var lotPoints = change.Points - Math.Min(change.Points, debt);
        var (entry, updated) = await ApplyAsync(tx, account, change, ct);
        if (lotPoints > 0)
        {
            await tx.Connection!.ExecuteAsync(new CommandDefinition("""
                INSERT INTO point_lots (customer_id, entry_id, order_id, points, remaining, earned_at, expires_at)
                VALUES (@CustomerId, @Id, @orderId, @lotPoints, @lotPoints, @CreatedAt, @expiresAt)
                """, new { entry.CustomerId, entry.Id, orderId = change.OrderId, lotPoints, entry.CreatedAt, expiresAt = calendar.ExpiresAt(entry.CreatedAt) },
                tx, cancellationToken: ct));
        }
        return (entry, updated);
    }

    /// <summary>Spends points, oldest lots first. Never takes the balance below zero: FAILED_PRECONDITION instead.</summary>
    public async Task<(LedgerEntryRecord Entry, AccountRecord Account)> SpendAsync(NpgsqlTransaction tx, AccountRecord account, Change change, CancellationToken ct)
    {
        var need = -change.Points;
        if (need <= 0) throw new ArgumentOutOfRangeException(nameof(change), "Spending is negative.");
        if (account.Balance < need)
            throw new PreconditionFailedException("INSUFFICIENT_POINTS", $"accounts/{account.CustomerId}",
                $"This needs {need} points; the member has {account.Balance}.");
        await ConsumeLotsAsync(tx, account.CustomerId, need, preferOrderId: null, ct);
        return await ApplyAsync(tx, account, change, ct);
    }

    /// <summary>
    /// Takes back points and growth value for a refund: from the order's own lot first, then the oldest lots;
    /// if the points were already spent the balance goes negative and later earnings repay it.
    /// </summary>
    public async Task<(LedgerEntryRecord Entry, AccountRecord Account)> ClawBackAsync(NpgsqlTransaction tx, AccountRecord account, Change change, CancellationToken ct)
    {
        await ConsumeLotsAsync(tx, account.CustomerId, -change.Points, change.OrderId, ct);
        return await ApplyAsync(tx, account, change, ct);
    }

    /// <summary>Expires every lot of the account whose time has come, in one entry; null when nothing is due.</summary>
    public async Task<(LedgerEntryRecord Entry, AccountRecord Account)?> ExpireDueAsync(NpgsqlTransaction tx, AccountRecord account, DateTime now, CancellationToken ct)
    {
        var due = (await tx.Connection!.QueryAsync<(long Id, long Remaining)>(new CommandDefinition("""
            WITH due AS (
                SELECT id, remaining FROM point_lots
                WHERE customer_id = @CustomerId AND remaining > 0 AND expires_at <= @now
            )
            UPDATE point_lots p SET remaining = 0 FROM due WHERE p.id = due.id
            RETURNING p.id, due.remaining
            """, new { account.CustomerId, now }, tx, cancellationToken: ct))).ToList();
        if (due.Count == 0) return null;
        var total = due.Sum(d => d.Remaining);
        return await ApplyAsync(tx, account, new Change(EntryKind.Expire, "expiry", $"lots {due.Min(d => d.Id)}-{due.Max(d => d.Id)}",
            -total, 0, $"expire:{account.CustomerId}:{due.Max(d => d.Id)}", $"Points earned before {now:yyyy-MM-dd} expired"), ct);
    }

    /// <summary>
    /// Takes <paramref name="need"/> points from the open lots, the oldest first (by expiry, then by when they were
    /// earned) whatever they came from: orders, check-ins, activities, grants or prizes. Only a refund names an order
    /// (<paramref name="preferOrderId"/>): its own lot goes first, then the oldest. A lot without an order id never
    /// matches, and with no order named no lot is preferred.
    /// </summary>
    private async Task ConsumeLotsAsync(NpgsqlTransaction tx, Guid customerId, long need, Guid? preferOrderId, CancellationToken ct)
    {
        // Only the lots needed: those whose running total before them is still short of the need.
        await tx.Connection!.ExecuteAsync(new CommandDefinition("""
            WITH ordered AS (
                SELECT id, remaining,
                       sum(remaining) OVER (ORDER BY coalesce(order_id = @preferOrderId, false) DESC, expires_at, earned_at, id) - remaining AS before
                FROM point_lots
                WHERE customer_id = @customerId AND remaining > 0
            )
            UPDATE point_lots p
            SET remaining = p.remaining - LEAST(o.remaining, @need - o.before)
            FROM ordered o
            WHERE p.id = o.id AND o.before < @need
            """, new { customerId, need, preferOrderId }, tx, cancellationToken: ct));
    }

    private async Task<(LedgerEntryRecord, AccountRecord)> ApplyAsync(NpgsqlTransaction tx, AccountRecord account, Change c, CancellationToken ct)
    {
        var now = clock.UtcNowForDb();
        var balance = account.Balance + c.Points;
        var growth = account.GrowthValue + c.GrowthValue;
        if (growth < 0) throw new InvalidOperationException($"Growth value of {account.CustomerId} would fall below zero ({growth}).");
        var tier = tiers.For(growth).Code;

        // One sequence number per event this change publishes (its points event, and TierChanged when the tier moves),
        // taken under the account's row lock, so an account's events are numbered 1, 2, 3, ... in the order they happened.
        var events = tier != account.Tier ? 2 : 1;
        var (id, lastSeq) = await tx.Connection!.QuerySingleAsync<(long, long)>(new CommandDefinition("""
            WITH account AS (
                UPDATE accounts SET balance = @balance, growth_value = @growth, tier = @tier, updated_at = @now, event_seq = event_seq + @events
                WHERE customer_id = @CustomerId
                RETURNING event_seq
            ), entry AS (
                INSERT INTO ledger_entries (customer_id, kind, source, source_ref, points, growth_value, balance_after, note, idempotency_key, created_at)
                VALUES (@CustomerId, @kind, @Source, @SourceRef, @Points, @GrowthValue, @balance, @Note, @IdempotencyKey, @now)
                RETURNING id
            )
            SELECT entry.id, account.event_seq FROM entry, account
            """, new
            {
                account.CustomerId, balance, growth, tier, now, events, kind = (short)c.Kind, c.Source, c.SourceRef, c.Points, c.GrowthValue,
                c.Note, c.IdempotencyKey,
            }, tx, cancellationToken: ct));

        var entry = new LedgerEntryRecord(id, account.CustomerId, c.Kind, c.Source, c.SourceRef, c.Points, c.GrowthValue, balance, c.Note, now);
        var updated = account with { Balance = balance, GrowthValue = growth, Tier = tier };
        var at = new DateTimeOffset(now, TimeSpan.Zero);
        var seq = lastSeq - events + 1;
        await PublishPointsEventAsync(tx, entry, c, updated, at, seq, ct);
        if (tier != account.Tier)
            await outbox.AddAsync(tx, new TierChanged(account.CustomerId, account.Tier, tier, growth, c.Source, at, seq + 1), ct);
        return (entry, updated);
    }

    /// <summary>
    /// Writes the points event of an entry, stamped with the entry's own time and its sequence number. Every entry publishes
    /// exactly one; a kind without an event is a programming error, not a silent gap in what consumers see.
    /// </summary>
    private Task PublishPointsEventAsync(NpgsqlTransaction tx, LedgerEntryRecord e, Change c, AccountRecord a, DateTimeOffset at, long seq, CancellationToken ct) =>
        c.Kind switch
        {
            EntryKind.Earn or EntryKind.Adjust when c.Points > 0 => outbox.AddAsync(tx,
                new PointsEarned(a.CustomerId, c.Points, c.GrowthValue, c.Source, c.SourceRef, a.Balance, a.GrowthValue, at, seq), ct),
            EntryKind.Adjust when c.Points < 0 => outbox.AddAsync(tx,
                new PointsDeducted(a.CustomerId, -c.Points, c.SourceRef, e.Id, a.Balance, at, seq), ct),
            EntryKind.Redeem => outbox.AddAsync(tx,
                new PointsRedeemed(a.CustomerId, -c.Points, c.SourceRef, c.IdempotencyKey, a.Balance, at, seq), ct),
            EntryKind.Expire => outbox.AddAsync(tx,
                new PointsExpired(a.CustomerId, -c.Points, a.Balance, at, seq), ct),
            EntryKind.ClawBack => outbox.AddAsync(tx,
                new PointsClawedBack(a.CustomerId, -c.Points, -c.GrowthValue, c.OrderId ?? Guid.Empty, c.RefundId ?? "", a.Balance, a.GrowthValue, at, seq), ct),
            _ => throw new InvalidOperationException($"Ledger entry kind {c.Kind} with {c.Points} points has no event; every entry must publish one."),
        };

    private static async Task<AccountRecord?> SelectForUpdateAsync(NpgsqlTransaction tx, Guid customerId, CancellationToken ct)
    {
        var row = await tx.Connection!.QuerySingleOrDefaultAsync<AccountRow>(new CommandDefinition(
            $"SELECT {AccountColumns} FROM accounts WHERE customer_id = @customerId FOR UPDATE", new { customerId }, tx, cancellationToken: ct));
        return row?.ToRecord();
    }

    private sealed class AccountRow
    {
        public Guid CustomerId { get; init; }
        public long Balance { get; init; }
        public long GrowthValue { get; init; }
        public string Tier { get; init; } = "";
        public int CheckInStreak { get; init; }
        public DateOnly? LastCheckIn { get; init; }
        public DateTime OpenedAt { get; init; }

        public AccountRecord ToRecord() => new(CustomerId, Balance, GrowthValue, Tier, CheckInStreak,
            LastCheckIn, OpenedAt);
    }

    internal sealed class EntryRow
    {
        public long Id { get; init; }
        public Guid CustomerId { get; init; }
        public short Kind { get; init; }
        public string Source { get; init; } = "";
        public string SourceRef { get; init; } = "";
        public long Points { get; init; }
        public long GrowthValue { get; init; }
        public long BalanceAfter { get; init; }
        public string? Note { get; init; }
        public DateTime CreatedAt { get; init; }

        public LedgerEntryRecord ToRecord() =>
            new(Id, CustomerId, (EntryKind)Kind, Source, SourceRef, Points, GrowthValue, BalanceAfter, Note, CreatedAt);
    }
}
