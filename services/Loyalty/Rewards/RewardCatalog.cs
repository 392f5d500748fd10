using Crm.Loyalty.V1;
using Crm.ServiceDefaults.Data;
using Crm.ServiceDefaults.Errors;
using Dapper;
using Npgsql;

namespace Crm.Loyalty.Rewards;

/// <summary>The rewards catalogue: upsert (the reward and its whole prize table at once) and reads.</summary>
public sealed class RewardCatalog(NpgsqlDataSource dataSource, TimeProvider clock)
{
    private const string RewardColumns = """
        id, name, kind, points_cost, cash_price, min_tier, per_member_limit, stock, active,
        coupon_face_value, coupon_threshold, coupon_valid_days, free_draws_per_day
        """;
    private const string PrizeColumns = "reward_id, id, name, kind, probability, stock, points, coupon_face_value, coupon_threshold, coupon_valid_days";

    /// <summary>
    /// Creates the reward with the given stock, or edits an existing one: everything but stock is replaced, and its
    /// remaining stock is left as it is (redemptions and draws change it meanwhile; a caller's copy is already stale).
    /// Prizes no longer listed are removed; a listed prize keeps its remaining stock, a new one starts with the given
    /// stock. Stock changes after creation go through <see cref="AdjustStockAsync"/>.
    /// </summary>
    public async Task<RewardRecord> UpsertAsync(RewardRecord r, CancellationToken ct)
    {
        var now = clock.UtcNowForDb();
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition("""
            INSERT INTO rewards (id, name, kind, points_cost, cash_price, min_tier, per_member_limit, stock, active,
                                 coupon_face_value, coupon_threshold, coupon_valid_days, free_draws_per_day, created_at, updated_at)
            VALUES (@Id, @Name, @kind, @PointsCost, @CashPrice, @MinTier, @PerMemberLimit, @Stock, @Active,
                    @face, @threshold, @days, @FreeDrawsPerDay, @now, @now)
            ON CONFLICT (id) DO UPDATE SET
                name = EXCLUDED.name, kind = EXCLUDED.kind, points_cost = EXCLUDED.points_cost, cash_price = EXCLUDED.cash_price,
                min_tier = EXCLUDED.min_tier, per_member_limit = EXCLUDED.per_member_limit,
                active = EXCLUDED.active, coupon_face_value = EXCLUDED.coupon_face_value, coupon_threshold = EXCLUDED.coupon_threshold,
                coupon_valid_days = EXCLUDED.coupon_valid_days, free_draws_per_day = EXCLUDED.free_draws_per_day, updated_at = EXCLUDED.updated_at
            """, new
            {
                r.Id, r.Name, kind = (short)r.Kind, r.PointsCost, r.CashPrice, r.MinTier, r.PerMemberLimit, r.Stock, r.Active,
                face = r.Coupon?.FaceValue, threshold = r.Coupon?.Threshold, days = r.Coupon?.ValidDays, r.FreeDrawsPerDay, now,
            }, tx, cancellationToken: ct));

        await connection.ExecuteAsync(new CommandDefinition(
            "DELETE FROM prizes WHERE reward_id = @Id AND NOT (id = ANY(@ids))",
            new { r.Id, ids = r.Prizes.Select(p => p.Id).ToArray() }, tx, cancellationToken: ct));
        for (var i = 0; i < r.Prizes.Count; i++)
        {
            var p = r.Prizes[i];
            await connection.ExecuteAsync(new CommandDefinition("""
                INSERT INTO prizes (reward_id, id, position, name, kind, probability, stock, points, coupon_face_value, coupon_threshold, coupon_valid_days)
                VALUES (@rewardId, @Id, @position, @Name, @kind, @Probability, @Stock, @Points, @face, @threshold, @days)
                ON CONFLICT (reward_id, id) DO UPDATE SET
                    position = EXCLUDED.position, name = EXCLUDED.name, kind = EXCLUDED.kind, probability = EXCLUDED.probability,
                    points = EXCLUDED.points, coupon_face_value = EXCLUDED.coupon_face_value,
                    coupon_threshold = EXCLUDED.coupon_threshold, coupon_valid_days = EXCLUDED.coupon_valid_days
                """, new
                {
                    rewardId = r.Id, p.Id, position = i, p.Name, kind = (short)p.Kind, p.Probability, p.Stock, p.Points,
                    face = p.Coupon?.FaceValue, threshold = p.Coupon?.Threshold, days = p.Coupon?.ValidDays,
                }, tx, cancellationToken: ct));
        }
        var stored = (await LoadAsync(connection, tx, "id = @id", new { id = r.Id }, ct)).Single();
        await Crm.ServiceDefaults.Security.Audit.Audit.RecordAsync(tx, r.Id, ct);
        await tx.CommitAsync(ct);
        return stored;
    }

    /// <summary>
    /// Changes the remaining stock of a reward (or, with <paramref name="prizeId"/>, of one of its lottery prizes) by
    /// <paramref name="delta"/>, once per idempotency key: a retry with the same key and arguments changes nothing and
    /// returns the reward as it stands. Never below zero (FAILED_PRECONDITION STOCK_BELOW_ZERO, nothing changed) and
    /// not for unlimited stock (FAILED_PRECONDITION STOCK_UNLIMITED). The row's update lock orders it with redemptions.
    /// </summary>
    public async Task<RewardRecord> AdjustStockAsync(string rewardId, string prizeId, int delta, string idempotencyKey, CancellationToken ct)
    {
        var now = clock.UtcNowForDb();
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var reward = await GetAsync(tx, rewardId, ct) ?? throw new NotFoundException("reward", rewardId);
        if (prizeId.Length > 0 && reward.Prizes.All(p => p.Id != prizeId)) throw new NotFoundException("prize", $"{rewardId}/{prizeId}");

        // Claim the key first: a concurrent retry with the same key waits here for this one, then finds it.
        var claimed = await connection.ExecuteAsync(new CommandDefinition("""
            INSERT INTO reward_stock_adjustments (idempotency_key, reward_id, prize_id, delta, stock_after, adjusted_at)
            VALUES (@idempotencyKey, @rewardId, @prizeId, @delta, 0, @now) ON CONFLICT DO NOTHING
            """, new { idempotencyKey, rewardId, prizeId, delta, now }, tx, cancellationToken: ct)) == 1;
        if (!claimed)
        {
            var earlier = await connection.QuerySingleAsync<(string RewardId, string PrizeId, int Delta)>(new CommandDefinition(
                "SELECT reward_id, prize_id, delta FROM reward_stock_adjustments WHERE idempotency_key = @idempotencyKey",
                new { idempotencyKey }, tx, cancellationToken: ct));
            if (earlier != (rewardId, prizeId, delta))
                throw new AlreadyExistsException("stock adjustment", idempotencyKey,
                    $"Idempotency key '{idempotencyKey}' was already used for a stock change of {earlier.Delta} to '{earlier.RewardId}'" +
                    (earlier.PrizeId.Length > 0 ? $" prize '{earlier.PrizeId}'." : "."));
            var standing = (await LoadAsync(connection, tx, "id = @id", new { id = rewardId }, ct)).Single();
            await tx.CommitAsync(ct);
            return standing;
        }

        var after = await connection.QuerySingleOrDefaultAsync<int?>(new CommandDefinition(prizeId.Length == 0
            ? """
              UPDATE rewards SET stock = stock + @delta, updated_at = @now
              WHERE id = @rewardId AND stock <> -1 AND stock::bigint + @delta BETWEEN 0 AND 2147483647 RETURNING stock
              """
            : """
              UPDATE prizes SET stock = stock + @delta
              WHERE reward_id = @rewardId AND id = @prizeId AND stock <> -1 AND stock::bigint + @delta BETWEEN 0 AND 2147483647 RETURNING stock
              """, new { rewardId, prizeId, delta, now }, tx, cancellationToken: ct));
        if (after is null)
        {
            // Refused: read what stands now (under the row's lock the update took or waited for) and say why.
            var subject = prizeId.Length == 0 ? $"rewards/{rewardId}" : $"rewards/{rewardId}/prizes/{prizeId}";
            var current = await connection.QuerySingleAsync<int>(new CommandDefinition(prizeId.Length == 0
                ? "SELECT stock FROM rewards WHERE id = @rewardId"
                : "SELECT stock FROM prizes WHERE reward_id = @rewardId AND id = @prizeId", new { rewardId, prizeId }, tx, cancellationToken: ct));
            if (current == -1)
                throw new PreconditionFailedException("STOCK_UNLIMITED", subject, $"'{rewardId}' has unlimited stock; there is no count to change.");
            if ((long)current + delta > int.MaxValue)
                throw new ValidationException("delta", $"would take the stock of {current} past {int.MaxValue}.");
            throw new PreconditionFailedException("STOCK_BELOW_ZERO", subject, $"{current} left; a change of {delta} would take the stock below zero.");
        }
        await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE reward_stock_adjustments SET stock_after = @after WHERE idempotency_key = @idempotencyKey",
            new { after, idempotencyKey }, tx, cancellationToken: ct));
        var stored = (await LoadAsync(connection, tx, "id = @id", new { id = rewardId }, ct)).Single();
        await Crm.ServiceDefaults.Security.Audit.Audit.RecordAsync(tx, rewardId, ct);
        await tx.CommitAsync(ct);
        return stored;
    }

    public async Task<RewardRecord?> GetAsync(string id, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        return (await LoadAsync(connection, null, "id = @id", new { id }, ct)).SingleOrDefault();
    }

    /// <summary>The reward as this transaction sees it (no lock: stock is taken with a conditional update).</summary>
    public static async Task<RewardRecord?> GetAsync(NpgsqlTransaction tx, string id, CancellationToken ct) =>
        (await LoadAsync(tx.Connection!, tx, "id = @id", new { id }, ct)).SingleOrDefault();

    /// <summary>
    /// Rewards by id after <paramref name="afterId"/>; with <paramref name="allowedTiers"/> only active ones whose
    /// minimum tier is one of them (or empty).
    /// </summary>
    public async Task<IReadOnlyList<RewardRecord>> ListAsync(string afterId, string[]? allowedTiers, int limit, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        var filter = allowedTiers is null
            ? "id > @afterId ORDER BY id LIMIT @limit"
            : "id > @afterId AND active AND (min_tier = '' OR min_tier = ANY(@allowedTiers)) ORDER BY id LIMIT @limit";
        return await LoadAsync(connection, null, filter, new { afterId, allowedTiers, limit }, ct);
    }

    /// <summary>
    /// Takes <paramref name="quantity"/> from the reward's stock unless it is unlimited (-1); false when not enough is
    /// left. Never below zero, however many take at once: the row's update lock orders them.
    /// </summary>
    public static async Task<bool> TakeStockAsync(NpgsqlTransaction tx, string rewardId, int quantity, CancellationToken ct) =>
        await tx.Connection!.ExecuteAsync(new CommandDefinition("""
            UPDATE rewards SET stock = CASE WHEN stock = -1 THEN -1 ELSE stock - @quantity END
            WHERE id = @rewardId AND (stock = -1 OR stock >= @quantity)
            """, new { rewardId, quantity }, tx, cancellationToken: ct)) == 1;

    /// <summary>Takes one of a prize's stock unless it is unlimited; false when none is left.</summary>
    public static async Task<bool> TakePrizeAsync(NpgsqlTransaction tx, string rewardId, string prizeId, CancellationToken ct) =>
        await tx.Connection!.ExecuteAsync(new CommandDefinition("""
            UPDATE prizes SET stock = CASE WHEN stock = -1 THEN -1 ELSE stock - 1 END
            WHERE reward_id = @rewardId AND id = @prizeId AND (stock = -1 OR stock >= 1)
            """, new { rewardId, prizeId }, tx, cancellationToken: ct)) == 1;

    private static async Task<List<RewardRecord>> LoadAsync(NpgsqlConnection connection, NpgsqlTransaction? tx, string where, object args, CancellationToken ct)
    {
        var rewards = (await connection.QueryAsync<RewardRow>(new CommandDefinition(
            $"SELECT {RewardColumns} FROM rewards WHERE {where}", args, tx, cancellationToken: ct))).ToList();
        if (rewards.Count == 0) return [];
        var lotteries = rewards.Where(r => r.Kind == (short)RewardKind.Lottery).Select(r => r.Id).ToArray();
        var prizes = lotteries.Length == 0 ? [] : (await connection.QueryAsync<PrizeRow>(new CommandDefinition(
            $"SELECT {PrizeColumns} FROM prizes WHERE reward_id = ANY(@lotteries) ORDER BY reward_id, position",
            new { lotteries }, tx, cancellationToken: ct))).ToList();
        var byReward = prizes.ToLookup(p => p.RewardId, p => p.ToRecord());
        return rewards.Select(r => r.ToRecord(byReward[r.Id].ToList())).ToList();
    }

    private static CouponTerms? Terms(decimal? face, decimal? threshold, int? days) =>
        face is { } f ? new CouponTerms(f, threshold ?? 0, days ?? 0) : null;

    private sealed class RewardRow
    {
        public string Id { get; init; } = "";
        public string Name { get; init; } = "";
        public short Kind { get; init; }
        public long PointsCost { get; init; }
        public decimal CashPrice { get; init; }
        public string MinTier { get; init; } = "";
        public int PerMemberLimit { get; init; }
        public int Stock { get; init; }
        public bool Active { get; init; }
        public decimal? CouponFaceValue { get; init; }
        public decimal? CouponThreshold { get; init; }
        public int? CouponValidDays { get; init; }
        public int FreeDrawsPerDay { get; init; }

        public RewardRecord ToRecord(IReadOnlyList<PrizeRecord> prizes) => new(Id, Name, (RewardKind)Kind, PointsCost, CashPrice, MinTier,
            PerMemberLimit, Stock, Active, Terms(CouponFaceValue, CouponThreshold, CouponValidDays), FreeDrawsPerDay, prizes);
    }

    private sealed class PrizeRow
    {
        public string RewardId { get; init; } = "";
        public string Id { get; init; } = "";
        public string Name { get; init; } = "";
        public short Kind { get; init; }
        public double Probability { get; init; }
        public int Stock { get; init; }
        public long Points { get; init; }
        public decimal? CouponFaceValue { get; init; }
        public decimal? CouponThreshold { get; init; }
        public int? CouponValidDays { get; init; }

        public PrizeRecord ToRecord() => new(Id, Name, (PrizeKind)Kind, Probability, Stock, Points,
            Terms(CouponFaceValue, CouponThreshold, CouponValidDays));
    }
}
