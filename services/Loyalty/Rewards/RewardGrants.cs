using Crm.Loyalty.Accounts;
using Crm.Loyalty.V1;
using Crm.ServiceDefaults.Data;
using Crm.ServiceDefaults.Errors;
using Dapper;
using Npgsql;

namespace Crm.Loyalty.Rewards;

/// <summary>
/// A coupon reward given without spending points (a campaign's reward). Under the member's account lock, like a redemption:
/// active, tier, the per-member limit (grants and redemptions together) and stock are checked; the balance is untouched.
/// A retried grant (same idempotency key) returns the coupon the first one issued.
/// </summary>
public sealed class RewardGrants(AccountTransactions accounts, Coupons coupons, TierTable tiers, TimeProvider clock)
{
    public async Task<CouponRecord> GrantAsync(Guid customerId, string rewardId, string reason, string idempotencyKey, CancellationToken ct)
    {
        try
        {
            return await accounts.RunAsync(customerId, (tx, account) => GrantAsync(tx, account, rewardId, reason, idempotencyKey, ct), ct);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UniqueViolation && ex.ConstraintName == "reward_grants_idempotency_key")
        {
            // Another member's grant with the same key committed first (the same member's retries wait on the account lock).
            throw KeyTaken(idempotencyKey);
        }
    }

    /// <summary>Units of the reward the member has had: redeemed and granted.</summary>
    public static Task<long> TakenAsync(NpgsqlTransaction tx, Guid customerId, string rewardId, CancellationToken ct) =>
        tx.Connection!.ExecuteScalarAsync<long>(new CommandDefinition("""
            SELECT (SELECT coalesce(sum(quantity), 0) FROM redemptions WHERE customer_id = @customerId AND reward_id = @rewardId)
                 + (SELECT count(*) FROM reward_grants WHERE customer_id = @customerId AND reward_id = @rewardId)
            """, new { customerId, rewardId }, tx, cancellationToken: ct));

    private async Task<CouponRecord> GrantAsync(NpgsqlTransaction tx, AccountRecord account, string rewardId, string reason, string key, CancellationToken ct)
    {
        var now = clock.UtcNowForDb();
        var earlier = await tx.Connection!.QuerySingleOrDefaultAsync<GrantRow>(new CommandDefinition(
            "SELECT id, customer_id, reward_id FROM reward_grants WHERE idempotency_key = @key", new { key }, tx, cancellationToken: ct));
        if (earlier is { } grant)
        {
            if (grant.CustomerId != account.CustomerId || grant.RewardId != rewardId) throw KeyTaken(key);
            Crm.ServiceDefaults.Security.Audit.Audit.MarkReplayed();
            return (await Coupons.ListForAsync(tx, null, null, now, ct, grant.Id)).Single();
        }

        var reward = await RewardCatalog.GetAsync(tx, rewardId, ct) ?? throw new NotFoundException("reward", rewardId);
        if (reward is not { Kind: RewardKind.Coupon, Coupon: { } terms })
            throw new ValidationException("reward_id", $"'{rewardId}' is a {reward.Kind.ToString().ToLowerInvariant()} reward: only coupon rewards can be granted.");
        RewardEligibility.Ensure(reward, account, tiers, await TakenAsync(tx, account.CustomerId, rewardId, ct), 1);
        if (!await RewardCatalog.TakeStockAsync(tx, rewardId, 1, ct)) throw RewardEligibility.OutOfStock(rewardId);

        var id = Guid.CreateVersion7();
        await tx.Connection!.ExecuteAsync(new CommandDefinition("""
            INSERT INTO reward_grants (id, customer_id, reward_id, reason, idempotency_key, granted_at)
            VALUES (@id, @CustomerId, @rewardId, @reason, @key, @now)
            """, new { id, account.CustomerId, rewardId, reason, key, now }, tx, cancellationToken: ct));
        return (await coupons.IssueAsync(tx, account.CustomerId, rewardId, terms, 1, null, null, now, ct, id)).Single();
    }

    private sealed class GrantRow
    {
        public Guid Id { get; init; }
        public Guid CustomerId { get; init; }
        public string RewardId { get; init; } = "";
    }

    private static AlreadyExistsException KeyTaken(string key) =>
        new("reward grant", key, $"Idempotency key '{key}' was already used for a different grant (another member or reward).");
}
