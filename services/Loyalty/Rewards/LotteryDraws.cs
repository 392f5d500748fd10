using System.Text.Json;
using Crm.Loyalty.Accounts;
using Crm.Loyalty.V1;
using Crm.ServiceDefaults.Data;
using Crm.ServiceDefaults.Errors;
using Dapper;
using Npgsql;
using EntryKind = Crm.Loyalty.Accounts.EntryKind;

namespace Crm.Loyalty.Rewards;

/// <summary>
/// Lottery draws: the first FreeDrawsPerDay draws of a day in the brand's calendar are free, later ones cost
/// PointsCost. The prize is picked with <see cref="ILotteryRandom"/>; a prize whose stock is gone gives nothing.
/// Points won are activity points (they count toward growth value). Lock order as for redemptions: the account,
/// then the reward's stock, then the prize's. A retried draw (same idempotency key) returns the first result.
/// </summary>
public sealed class LotteryDraws(
    AccountTransactions accounts, Ledger ledger, Coupons coupons, TierTable tiers, BrandCalendar calendar, ILotteryRandom random,
    TimeProvider clock)
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private const string Columns = "id, customer_id, reward_id, free_draw, points_spent, prize::text AS prize, balance_after, drawn_at";

    public async Task<DrawRecord> DrawAsync(Guid customerId, string rewardId, string idempotencyKey, CancellationToken ct)
    {
        try
        {
            return await accounts.RunAsync(customerId, (tx, account) => DrawAsync(tx, account, rewardId, idempotencyKey, ct), ct);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UniqueViolation
            && ex.ConstraintName is "draws_idempotency_key" or "ledger_entries_idempotency_key")
        {
            throw KeyTaken(idempotencyKey);
        }
    }

    private async Task<DrawRecord> DrawAsync(NpgsqlTransaction tx, AccountRecord account, string rewardId, string key, CancellationToken ct)
    {
        var now = clock.UtcNowForDb();
        if (await FindAsync(tx, key, now, ct) is { } earlier)
        {
            if (earlier.CustomerId != account.CustomerId || earlier.RewardId != rewardId) throw KeyTaken(key);
            Crm.ServiceDefaults.Security.Audit.Audit.MarkReplayed();
            return earlier;
        }

        var reward = await RewardCatalog.GetAsync(tx, rewardId, ct) ?? throw new NotFoundException("reward", rewardId);
        if (reward.Kind != RewardKind.Lottery)
            throw new ValidationException("reward_id", $"'{rewardId}' is not a lottery: redeem it with Redeem, not Draw.");
        var today = calendar.Today().ToDateTime(TimeOnly.MinValue);
        var (total, freeToday) = await tx.Connection!.QuerySingleAsync<(long, long)>(new CommandDefinition("""
            SELECT count(*)::bigint, (count(*) FILTER (WHERE free_draw AND draw_day = @today))::bigint
            FROM draws WHERE customer_id = @CustomerId AND reward_id = @rewardId
            """, new { account.CustomerId, rewardId, today }, tx, cancellationToken: ct));
        RewardEligibility.Ensure(reward, account, tiers, total, 1);
        if (reward.Stock == 0) throw RewardEligibility.OutOfStock(rewardId);

        var id = Guid.CreateVersion7();
        var free = freeToday < reward.FreeDrawsPerDay;
        long spent = 0;
        if (!free)
        {
            if (reward.PointsCost <= 0)
                throw new PreconditionFailedException("LIMIT_REACHED", $"rewards/{rewardId}",
                    $"Customer {account.CustomerId} has had today's {reward.FreeDrawsPerDay} free draw(s) of '{rewardId}'; come back tomorrow.");
            spent = reward.PointsCost;
            (_, account) = await ledger.SpendAsync(tx, account, new Change(EntryKind.Redeem, "redemption", rewardId, -spent, 0,
                "draw:" + key, $"Lottery draw: {reward.Name}"), ct);
        }
        if (!await RewardCatalog.TakeStockAsync(tx, rewardId, 1, ct)) throw RewardEligibility.OutOfStock(rewardId);

        var prize = LotteryPicker.Pick(random.NextDouble(), reward.Prizes);
        if (prize is not null && !await RewardCatalog.TakePrizeAsync(tx, rewardId, prize.Id, ct)) prize = null; // taken meanwhile
        prize ??= LotteryPicker.Nothing;

        if (prize is { Kind: PrizeKind.Points, Points: > 0 })
            (_, account) = await ledger.EarnAsync(tx, account, new Change(EntryKind.Earn, "activity", "lottery:" + rewardId,
                prize.Points, prize.Points, "draw-prize:" + id, $"Won {prize.Name} in {reward.Name}"), ct);

        await tx.Connection!.ExecuteAsync(new CommandDefinition("""
            INSERT INTO draws (id, customer_id, reward_id, draw_day, free_draw, points_spent, prize, balance_after, idempotency_key, drawn_at)
            VALUES (@id, @CustomerId, @rewardId, @today, @free, @spent, @prize::jsonb, @Balance, @key, @now)
            """, new { id, account.CustomerId, rewardId, today, free, spent, prize = JsonSerializer.Serialize(prize, Json), account.Balance, key, now },
            tx, cancellationToken: ct));
        var coupon = prize is { Kind: PrizeKind.Coupon, Coupon: { } terms }
            ? (await coupons.IssueAsync(tx, account.CustomerId, rewardId, terms, 1, null, id, now, ct))[0]
            : null;
        return new DrawRecord(id, account.CustomerId, rewardId, prize, free, spent, coupon, account.Balance, now);
    }

    private static async Task<DrawRecord?> FindAsync(NpgsqlTransaction tx, string key, DateTime now, CancellationToken ct)
    {
        var row = await tx.Connection!.QuerySingleOrDefaultAsync<DrawRow>(new CommandDefinition(
            $"SELECT {Columns} FROM draws WHERE idempotency_key = @key", new { key }, tx, cancellationToken: ct));
        if (row is null) return null;
        var coupon = (await Coupons.ListForAsync(tx, null, row.Id, now, ct)).SingleOrDefault();
        return new DrawRecord(row.Id, row.CustomerId, row.RewardId, JsonSerializer.Deserialize<PrizeRecord>(row.Prize, Json)!,
            row.FreeDraw, row.PointsSpent, coupon, row.BalanceAfter, row.DrawnAt);
    }

    private static AlreadyExistsException KeyTaken(string key) =>
        new("draw", key, $"Idempotency key '{key}' was already used for a draw by another member or of another lottery.");

    private sealed class DrawRow
    {
        public Guid Id { get; init; }
        public Guid CustomerId { get; init; }
        public string RewardId { get; init; } = "";
        public bool FreeDraw { get; init; }
        public long PointsSpent { get; init; }
        public string Prize { get; init; } = "";
        public long BalanceAfter { get; init; }
        public DateTime DrawnAt { get; init; }
    }
}
