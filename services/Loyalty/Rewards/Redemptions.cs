using Crm.Loyalty.Accounts;
using Crm.Loyalty.V1;
using Crm.ServiceDefaults.Data;
using Crm.ServiceDefaults.Errors;
using Dapper;
using Npgsql;
using EntryKind = Crm.Loyalty.Accounts.EntryKind;

namespace Crm.Loyalty.Rewards;

/// <summary>
/// Redeeming points for a coupon, goods or points + cash. Under the member's account lock (taken first), then the
/// reward's stock (a conditional update): it never oversells and never takes a balance below zero.
/// Growth value is untouched. A retried request (same idempotency key) returns the first redemption.
/// </summary>
public sealed class Redemptions(AccountTransactions accounts, Ledger ledger, Coupons coupons, TierTable tiers, TimeProvider clock)
{
    private const string Columns = "id, customer_id, reward_id, quantity, points_spent, cash_due, balance_after, redeemed_at";

    public async Task<RedemptionRecord> RedeemAsync(Guid customerId, string rewardId, int quantity, string idempotencyKey, CancellationToken ct)
    {
        try
        {
            return await accounts.RunAsync(customerId, (tx, account) => RedeemAsync(tx, account, rewardId, quantity, idempotencyKey, ct), ct);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UniqueViolation
            && ex.ConstraintName is "redemptions_idempotency_key" or "ledger_entries_idempotency_key")
        {
            // Another member's request with the same key committed first (the same member's retries wait on the account lock).
            throw KeyTaken(idempotencyKey);
        }
    }

    private async Task<RedemptionRecord> RedeemAsync(NpgsqlTransaction tx, AccountRecord account, string rewardId, int quantity, string key, CancellationToken ct)
    {
        var now = clock.UtcNowForDb();
        if (await FindAsync(tx, key, now, ct) is { } earlier)
        {
            if (earlier.CustomerId != account.CustomerId || earlier.RewardId != rewardId || earlier.Quantity != quantity)
                throw KeyTaken(key);
            Crm.ServiceDefaults.Security.Audit.Audit.MarkReplayed();
            return earlier;
        }

        var reward = await RewardCatalog.GetAsync(tx, rewardId, ct) ?? throw new NotFoundException("reward", rewardId);
        if (reward.Kind == RewardKind.Lottery)
            throw new ValidationException("reward_id", $"'{rewardId}' is a lottery: draw it with Draw, not Redeem.");
        var taken = await RewardGrants.TakenAsync(tx, account.CustomerId, rewardId, ct); // granted units count against the limit too
        RewardEligibility.Ensure(reward, account, tiers, taken, quantity);
        if (reward.Stock != -1 && reward.Stock < quantity) throw RewardEligibility.OutOfStock(rewardId);

        var points = checked(reward.PointsCost * quantity);
        var balance = account.Balance;
        if (points > 0)
        {
            var (_, spent) = await ledger.SpendAsync(tx, account, new Change(EntryKind.Redeem, "redemption", rewardId, -points, 0,
                "redeem:" + key, quantity == 1 ? $"Redeemed {reward.Name}" : $"Redeemed {quantity} × {reward.Name}"), ct);
            balance = spent.Balance;
        }

        // After the spend (a member short of points never touches the reward's row), before the inserts that
        // reference the reward: this transaction then holds the row's update lock before its foreign-key share lock.
        if (!await RewardCatalog.TakeStockAsync(tx, rewardId, quantity, ct)) throw RewardEligibility.OutOfStock(rewardId);

        var id = Guid.CreateVersion7();
        var cashDue = reward.Kind == RewardKind.PointsAndCash ? reward.CashPrice * quantity : 0m;
        await tx.Connection!.ExecuteAsync(new CommandDefinition("""
            INSERT INTO redemptions (id, customer_id, reward_id, quantity, points_spent, cash_due, balance_after, idempotency_key, redeemed_at)
            VALUES (@id, @CustomerId, @rewardId, @quantity, @points, @cashDue, @balance, @key, @now)
            """, new { id, account.CustomerId, rewardId, quantity, points, cashDue, balance, key, now }, tx, cancellationToken: ct));
        var issued = reward is { Kind: RewardKind.Coupon, Coupon: { } terms }
            ? await coupons.IssueAsync(tx, account.CustomerId, rewardId, terms, quantity, id, null, now, ct)
            : [];

        return new RedemptionRecord(id, account.CustomerId, rewardId, quantity, points, cashDue, issued, balance, now);
    }

    private static async Task<RedemptionRecord?> FindAsync(NpgsqlTransaction tx, string key, DateTime now, CancellationToken ct)
    {
        var row = await tx.Connection!.QuerySingleOrDefaultAsync<RedemptionRow>(new CommandDefinition(
            $"SELECT {Columns} FROM redemptions WHERE idempotency_key = @key", new { key }, tx, cancellationToken: ct));
        if (row is null) return null;
        var issued = await Coupons.ListForAsync(tx, row.Id, null, now, ct);
        return new RedemptionRecord(row.Id, row.CustomerId, row.RewardId, row.Quantity, row.PointsSpent, row.CashDue, issued,
            row.BalanceAfter, row.RedeemedAt);
    }

    private static AlreadyExistsException KeyTaken(string key) =>
        new("redemption", key, $"Idempotency key '{key}' was already used for a different redemption (another member, reward or quantity).");

    private sealed class RedemptionRow
    {
        public Guid Id { get; init; }
        public Guid CustomerId { get; init; }
        public string RewardId { get; init; } = "";
        public int Quantity { get; init; }
        public long PointsSpent { get; init; }
        public decimal CashDue { get; init; }
        public long BalanceAfter { get; init; }
        public DateTime RedeemedAt { get; init; }
    }
}
