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

    /// <summary>
    /// <see cref="LockAccountAsync"/> for several members at once (a batch of paid orders): locked in customer id order, as
    /// every batch locks them, so two batches cannot deadlock on each other; the missing ones opened in one statement.
    /// </summary>
    public async Task<Dictionary<Guid, AccountRecord>> LockAccountsAsync(NpgsqlTransaction tx, IEnumerable<Guid> customerIds, CancellationToken ct)
    {
        var ids = customerIds.Distinct().ToArray();
        var accounts = await SelectForUpdateAsync(tx, ids, ct);
        var missing = ids.Where(id => !accounts.ContainsKey(id)).ToArray();
        if (missing.Length == 0) return accounts;
        var now = clock.UtcNowForDb();
        await tx.Connection!.ExecuteAsync(new CommandDefinition("""
            INSERT INTO accounts (customer_id, tier, opened_at, updated_at)
            SELECT id, @tier, @now, @now FROM unnest(@missing) AS m(id) ORDER BY id ON CONFLICT DO NOTHING
            """, new { missing, tier = tiers.For(0).Code, now }, tx, cancellationToken: ct));
        foreach (var (id, account) in await SelectForUpdateAsync(tx, missing, ct)) accounts[id] = account;
        return accounts;
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
        var lotPoints = LotPoints(account, change);
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

    /// <summary>
    /// <see cref="EarnAsync"/> for many earnings at once (a batch of paid orders), by the same rules and with the same rows
    /// and events: each member's earnings apply in the order given, to the accounts locked with <see cref="LockAccountsAsync"/>.
    /// One statement updates each account once and inserts the entries and their lots; one more per event type.
    /// </summary>
    public async Task EarnAllAsync(NpgsqlTransaction tx, IReadOnlyDictionary<Guid, AccountRecord> accounts,
        IReadOnlyList<(Guid CustomerId, Change Change)> earnings, CancellationToken ct)
    {
        if (earnings.Count == 0) return;
        var now = clock.UtcNowForDb();
        var current = new Dictionary<Guid, AccountRecord>();
        var events = new Dictionary<Guid, int>();
        var steps = new List<(AccountRecord Before, AccountRecord After, Change Change, long LotPoints)>(earnings.Count);
        foreach (var (customerId, change) in earnings)
        {
            if (change.Kind != EntryKind.Earn || change.Points <= 0) throw new ArgumentOutOfRangeException(nameof(earnings), "Earnings are positive.");
            var before = current.GetValueOrDefault(customerId) ?? accounts[customerId];
            var after = After(before, change);
            steps.Add((before, after, change, LotPoints(before, change)));
            current[customerId] = after;
            events[customerId] = events.GetValueOrDefault(customerId) + EventCount(before, after);
        }

        var lots = steps.Where(s => s.LotPoints > 0).ToList();
        var lastSeq = (await tx.Connection!.QueryAsync<(Guid CustomerId, long LastSeq)>(new CommandDefinition("""
            WITH account AS (
                UPDATE accounts a SET balance = u.balance, growth_value = u.growth, tier = u.tier, updated_at = @now, event_seq = a.event_seq + u.events
                FROM unnest(@accountIds, @balances, @growths, @tiers, @eventCounts) AS u(customer_id, balance, growth, tier, events)
                WHERE a.customer_id = u.customer_id
                RETURNING a.customer_id, a.event_seq
            ), entry AS (
                INSERT INTO ledger_entries (customer_id, kind, source, source_ref, points, growth_value, balance_after, note, idempotency_key, created_at)
                SELECT e.customer_id, @kind, e.source, e.source_ref, e.points, e.growth, e.balance, e.note, e.key, @now
                FROM unnest(@customerIds, @sources, @sourceRefs, @points, @growthValues, @balancesAfter, @notes, @keys)
                    WITH ORDINALITY AS e(customer_id, source, source_ref, points, growth, balance, note, key, n)
                ORDER BY e.n
                RETURNING id, idempotency_key
            ), lot AS (
                INSERT INTO point_lots (customer_id, entry_id, order_id, points, remaining, earned_at, expires_at)
                SELECT l.customer_id, entry.id, l.order_id, l.points, l.points, @now, @expiresAt
                FROM unnest(@lotKeys, @lotCustomerIds, @lotOrderIds, @lotPoints) WITH ORDINALITY AS l(key, customer_id, order_id, points, n)
                JOIN entry ON entry.idempotency_key = l.key
                ORDER BY l.n
            )
            SELECT customer_id, event_seq FROM account
            """, new
            {
                now, kind = (short)EntryKind.Earn, expiresAt = calendar.ExpiresAt(now),
                accountIds = current.Keys.ToArray(), balances = current.Values.Select(a => a.Balance).ToArray(),
                growths = current.Values.Select(a => a.GrowthValue).ToArray(), tiers = current.Values.Select(a => a.Tier).ToArray(),
                eventCounts = current.Keys.Select(id => events[id]).ToArray(),
                customerIds = steps.Select(s => s.Before.CustomerId).ToArray(), sources = steps.Select(s => s.Change.Source).ToArray(),
                sourceRefs = steps.Select(s => s.Change.SourceRef).ToArray(), points = steps.Select(s => s.Change.Points).ToArray(),
                growthValues = steps.Select(s => s.Change.GrowthValue).ToArray(), balancesAfter = steps.Select(s => s.After.Balance).ToArray(),
                notes = steps.Select(s => s.Change.Note).ToArray(), keys = steps.Select(s => s.Change.IdempotencyKey).ToArray(),
                lotKeys = lots.Select(s => s.Change.IdempotencyKey).ToArray(), lotCustomerIds = lots.Select(s => s.Before.CustomerId).ToArray(),
                lotOrderIds = lots.Select(s => s.Change.OrderId).ToArray(), lotPoints = lots.Select(s => s.LotPoints).ToArray(),
            }, tx, cancellationToken: ct))).ToDictionary(r => r.CustomerId, r => r.LastSeq);

        // Each account's events numbered on from where it stood, in the order of its earnings (as EarnAsync one by one would).
        var at = new DateTimeOffset(now, TimeSpan.Zero);
        var seq = current.Keys.ToDictionary(id => id, id => lastSeq[id] - events[id] + 1);
        var earned = new List<PointsEarned>(steps.Count);
        var moved = new List<TierChanged>();
        foreach (var (before, after, change, _) in steps)
        {
            var id = before.CustomerId;
            earned.Add(Earned(change, after, at, seq[id]));
            if (after.Tier != before.Tier) moved.Add(TierMoved(before, after, change, at, seq[id] + 1));
            seq[id] += EventCount(before, after);
        }
        await outbox.AddRangeAsync(tx, earned, ct);
        await outbox.AddRangeAsync(tx, moved, ct);
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
        var updated = After(account, c);
        var (balance, growth, tier) = (updated.Balance, updated.GrowthValue, updated.Tier);

        // One sequence number per event this change publishes (its points event, and TierChanged when the tier moves),
        // taken under the account's row lock, so an account's events are numbered 1, 2, 3, ... in the order they happened.
        var events = EventCount(account, updated);
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
        var at = new DateTimeOffset(now, TimeSpan.Zero);
        var seq = lastSeq - events + 1;
        await PublishPointsEventAsync(tx, entry, c, updated, at, seq, ct);
        if (tier != account.Tier)
            await outbox.AddAsync(tx, TierMoved(account, updated, c, at, seq + 1), ct);
        return (entry, updated);
    }

    /// <summary>The account after a change: balance and growth value moved by it, the tier that growth value reaches.</summary>
    private AccountRecord After(AccountRecord account, Change c)
    {
        var growth = account.GrowthValue + c.GrowthValue;
        if (growth < 0) throw new InvalidOperationException($"Growth value of {account.CustomerId} would fall below zero ({growth}).");
        return account with { Balance = account.Balance + c.Points, GrowthValue = growth, Tier = tiers.For(growth).Code };
    }

    /// <summary>The points of an earning that make a lot: a negative balance (refunded points already spent) is repaid first.</summary>
    private static long LotPoints(AccountRecord account, Change earning) => earning.Points - Math.Min(earning.Points, Math.Max(0, -account.Balance));

    /// <summary>Events a change publishes: its points event, and TierChanged when the tier moves.</summary>
    private static int EventCount(AccountRecord before, AccountRecord after) => after.Tier != before.Tier ? 2 : 1;

    private static PointsEarned Earned(Change c, AccountRecord a, DateTimeOffset at, long seq) =>
        new(a.CustomerId, c.Points, c.GrowthValue, c.Source, c.SourceRef, a.Balance, a.GrowthValue, at, seq);

    private static TierChanged TierMoved(AccountRecord before, AccountRecord after, Change c, DateTimeOffset at, long seq) =>
        new(before.CustomerId, before.Tier, after.Tier, after.GrowthValue, c.Source, at, seq);

    /// <summary>
    /// Writes the points event of an entry, stamped with the entry's own time and its sequence number. Every entry publishes
    /// exactly one; a kind without an event is a programming error, not a silent gap in what consumers see.
    /// </summary>
    private Task PublishPointsEventAsync(NpgsqlTransaction tx, LedgerEntryRecord e, Change c, AccountRecord a, DateTimeOffset at, long seq, CancellationToken ct) =>
        c.Kind switch
        {
            EntryKind.Earn or EntryKind.Adjust when c.Points > 0 => outbox.AddAsync(tx, Earned(c, a, at, seq), ct),
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

    private static async Task<Dictionary<Guid, AccountRecord>> SelectForUpdateAsync(NpgsqlTransaction tx, Guid[] customerIds, CancellationToken ct) =>
        (await tx.Connection!.QueryAsync<AccountRow>(new CommandDefinition(
            $"SELECT {AccountColumns} FROM accounts WHERE customer_id = ANY (@customerIds) ORDER BY customer_id FOR UPDATE",
            new { customerIds }, tx, cancellationToken: ct))).ToDictionary(r => r.CustomerId, r => r.ToRecord());

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
