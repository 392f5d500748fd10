using Crm.Contracts;
using Crm.Loyalty.V1;
using Crm.ServiceDefaults.Data;
using Crm.ServiceDefaults.Errors;
using Crm.Messaging;
using Dapper;
using Npgsql;

namespace Crm.Loyalty.Rewards;

public sealed record CouponCheck(CouponRecord Coupon, bool Valid, string Reason, decimal Discount);

/// <summary>
/// Coupons: issued inside a redemption's, draw's or grant's transaction (each with its CouponIssued event), checked at the
/// till without writing, and used once — a conditional update on the issued status, so two tills racing for the
/// same code cannot both win.
/// </summary>
public sealed class Coupons(NpgsqlDataSource dataSource, Outbox outbox, TimeProvider clock)
{
    private const string Columns =
        "code, customer_id, reward_id, face_value, threshold, valid_from, valid_until, status, used_at, used_order_ref";
    private const int MaxCodeAttempts = 5;

    /// <summary>Issues <paramref name="count"/> coupons valid from <paramref name="now"/> for the terms' days, in code order.</summary>
    public async Task<IReadOnlyList<CouponRecord>> IssueAsync(NpgsqlTransaction tx, Guid customerId, string rewardId, CouponTerms terms,
        int count, Guid? redemptionId, Guid? drawId, DateTime now, CancellationToken ct, Guid? grantId = null)
    {
        var validUntil = now.AddDays(terms.ValidDays);
        var issued = new List<CouponRecord>(count);
        for (var i = 0; i < count; i++)
        {
            var code = await InsertAsync(tx, customerId, rewardId, terms, redemptionId, drawId, grantId, now, validUntil, ct);
            issued.Add(new CouponRecord(code, customerId, rewardId, terms.FaceValue, terms.Threshold, now, validUntil, CouponStatus.Issued, null, null));
            await outbox.AddAsync(tx, new CouponIssued(code, customerId, rewardId, terms.FaceValue, terms.Threshold,
                new DateTimeOffset(validUntil, TimeSpan.Zero), new DateTimeOffset(now, TimeSpan.Zero)), ct);
        }
        return issued.OrderBy(c => c.Code, StringComparer.Ordinal).ToList();
    }

    private static async Task<string> InsertAsync(NpgsqlTransaction tx, Guid customerId, string rewardId, CouponTerms terms,
        Guid? redemptionId, Guid? drawId, Guid? grantId, DateTime now, DateTime validUntil, CancellationToken ct)
    {
        for (var attempt = 1; attempt <= MaxCodeAttempts; attempt++)
        {
            // A clash is ~1 in 10^18 per code, but a unique violation would abort the whole transaction: skip it instead.
            var code = CouponCodes.New();
            var inserted = await tx.Connection!.ExecuteAsync(new CommandDefinition("""
                INSERT INTO coupons (code, customer_id, reward_id, redemption_id, draw_id, grant_id, face_value, threshold, valid_from, valid_until)
                VALUES (@code, @customerId, @rewardId, @redemptionId, @drawId, @grantId, @FaceValue, @Threshold, @now, @validUntil)
                ON CONFLICT (code) DO NOTHING
                """, new { code, customerId, rewardId, redemptionId, drawId, grantId, terms.FaceValue, terms.Threshold, now, validUntil },
                tx, cancellationToken: ct));
            if (inserted == 1) return code;
        }
        throw new InvalidOperationException($"No free coupon code after {MaxCodeAttempts} attempts.");
    }

    public static async Task<IReadOnlyList<CouponRecord>> ListForAsync(NpgsqlTransaction tx, Guid? redemptionId, Guid? drawId, DateTime now, CancellationToken ct,
        Guid? grantId = null)
    {
        var rows = await tx.Connection!.QueryAsync<CouponRow>(new CommandDefinition($"""
            SELECT {Columns} FROM coupons
            WHERE (@redemptionId::uuid IS NOT NULL AND redemption_id = @redemptionId) OR (@drawId::uuid IS NOT NULL AND draw_id = @drawId)
               OR (@grantId::uuid IS NOT NULL AND grant_id = @grantId)
            ORDER BY code
            """, new { redemptionId, drawId, grantId }, tx, cancellationToken: ct));
        return rows.Select(r => r.ToRecord(now)).ToList();
    }

    /// <summary>Whether the coupon could be used on an order of <paramref name="orderAmount"/> now. Writes nothing.</summary>
    public async Task<CouponCheck> ValidateAsync(string code, decimal orderAmount, Guid? customerId, CancellationToken ct)
    {
        var now = clock.UtcNowForDb();
        var coupon = await GetAsync(code, now, ct) ?? throw new NotFoundException("coupon", code);
        var problem = Problem(coupon, orderAmount, customerId);
        return problem is null
            ? new CouponCheck(coupon, true, "", Math.Min(coupon.FaceValue, orderAmount))
            : new CouponCheck(coupon, false, $"{problem.Value.Type}: {problem.Value.Description}", 0);
    }

    /// <summary>
    /// Uses the coupon on the order. Repeating the call with the same order reference returns the used coupon;
    /// any other order gets COUPON_USED.
    /// </summary>
    public async Task<CouponRecord> UseAsync(string code, decimal orderAmount, string orderRef, Guid? customerId, CancellationToken ct)
    {
        for (var attempt = 0; attempt < 3; attempt++)
        {
            var now = clock.UtcNowForDb();
            await using (var connection = await dataSource.OpenConnectionAsync(ct))
            await using (var tx = await connection.BeginTransactionAsync(ct))
            {
                var row = await connection.QuerySingleOrDefaultAsync<CouponRow>(new CommandDefinition($"""
                    UPDATE coupons SET status = 2, used_at = @now, used_order_ref = @orderRef, used_order_amount = @orderAmount
                    WHERE code = @code AND status = 1 AND valid_until > @now AND threshold <= @orderAmount
                      AND (@customerId::uuid IS NULL OR customer_id = @customerId)
                    RETURNING {Columns}
                    """, new { code, now, orderRef, orderAmount, customerId }, tx, cancellationToken: ct));
                if (row is not null)
                {
                    var used = row.ToRecord(now);
                    await outbox.AddAsync(tx, new CouponUsed(used.Code, used.CustomerId, used.RewardId, used.FaceValue, orderRef,
                        new DateTimeOffset(now, TimeSpan.Zero)), ct);
                    await Crm.ServiceDefaults.Security.Audit.Audit.RecordAsync(tx, used.Code, ct);
                    await tx.CommitAsync(ct);
                    outbox.Wake();
                    return used;
                }
            }

            // Not used now: say why, or return the earlier use by this same order.
            var coupon = await GetAsync(code, now, ct) ?? throw new NotFoundException("coupon", code);
            if (coupon.Status == CouponStatus.Used && coupon.UsedOrderRef == orderRef && (customerId is null || customerId == coupon.CustomerId))
                return coupon;
            if (Problem(coupon, orderAmount, customerId) is { } problem)
                throw new PreconditionFailedException(problem.Type, $"coupons/{code}", problem.Description);
            // The coupon changed between the update and the read (e.g. its validity was extended): try again.
        }
        throw new InvalidOperationException($"Coupon {code} could neither be used nor refused after 3 attempts.");
    }

    /// <summary>Why the coupon cannot be used on this order, or null when it can.</summary>
    public static (string Type, string Description)? Problem(CouponRecord c, decimal orderAmount, Guid? customerId)
    {
        if (customerId is { } who && who != c.CustomerId)
            return ("NOT_YOURS", $"coupon {c.Code} belongs to another member.");
        return c.Status switch
        {
            CouponStatus.Used => ("COUPON_USED", $"coupon {c.Code} was already used on order {c.UsedOrderRef} at {c.UsedAt:u}."),
            CouponStatus.Expired => ("COUPON_EXPIRED", $"coupon {c.Code} expired at {c.ValidUntil:u}."),
            _ when orderAmount < c.Threshold => ("THRESHOLD_NOT_MET",
                $"coupon {c.Code} is for orders of {c.Threshold:0.00} or more; this order is {orderAmount:0.00}."),
            _ => null,
        };
    }

    private async Task<CouponRecord?> GetAsync(string code, DateTime now, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        var row = await connection.QuerySingleOrDefaultAsync<CouponRow>(new CommandDefinition(
            $"SELECT {Columns} FROM coupons WHERE code = @code", new { code }, cancellationToken: ct));
        return row?.ToRecord(now);
    }

    private sealed class CouponRow
    {
        public string Code { get; init; } = "";
        public Guid CustomerId { get; init; }
        public string RewardId { get; init; } = "";
        public decimal FaceValue { get; init; }
        public decimal Threshold { get; init; }
        public DateTime ValidFrom { get; init; }
        public DateTime ValidUntil { get; init; }
        public short Status { get; init; }
        public DateTime? UsedAt { get; init; }
        public string? UsedOrderRef { get; init; }

        public CouponRecord ToRecord(DateTime now) => new(Code, CustomerId, RewardId, FaceValue, Threshold, ValidFrom, ValidUntil,
            Status == (short)CouponStatus.Used ? CouponStatus.Used : ValidUntil <= now ? CouponStatus.Expired : CouponStatus.Issued,
            UsedAt, UsedOrderRef);
    }
}
