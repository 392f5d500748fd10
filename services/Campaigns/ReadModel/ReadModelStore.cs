using Crm.Campaigns.Analytics;
using Crm.Campaigns.Reports;
using Crm.Contracts;
using Dapper;
using Npgsql;

namespace Crm.Campaigns.ReadModel;

/// <summary>
/// Writes of the read model, shared by the event consumers and the rebuild. Every write is idempotent and order
/// independent: profiles by version, tier and points by (Sequence, timestamp), refunds by the order's monotonic
/// refund total, orders and lines by id. So a duplicate, a late or an early event, or a rebuild racing the
/// events all converge on the same rows.
/// </summary>
public sealed class ReadModelStore(NpgsqlDataSource dataSource)
{
    public sealed record Profile(Guid CustomerId, long Version, DateTime? RegisteredAt, DateOnly? Birthday, string? Region, string? City,
        IReadOnlyList<string> Tags, bool MarketingConsent);

    public sealed record OrderData(Guid OrderId, Guid CustomerId, string? ExternalOrderId, string? StoreId, string? Channel, decimal AmountPaid,
        decimal AmountRefunded, DateTime PaidAt, IReadOnlyList<OrderLineItem> Lines);

    public static Profile FromSnapshot(CustomerSnapshot s, DateTime? registeredAt) =>
        new(s.CustomerId, s.Version, registeredAt, s.Birthday, s.Region, s.City, s.Tags, s.MarketingConsent);

    public static Task UpsertProfileAsync(NpgsqlConnection connection, NpgsqlTransaction? tx, Profile p, CancellationToken ct) =>
        connection.ExecuteAsync(new CommandDefinition("""
            INSERT INTO customers (customer_id, profile_version, registered_at, birthday_month, birthday_day, region, city, tags, marketing_consent)
            VALUES (@CustomerId, @Version, @RegisteredAt, @BirthdayMonth, @BirthdayDay, @Region, @City, @Tags, @MarketingConsent)
            ON CONFLICT (customer_id) DO UPDATE SET
                registered_at = coalesce(customers.registered_at, EXCLUDED.registered_at),
                profile_version = EXCLUDED.profile_version, birthday_month = EXCLUDED.birthday_month, birthday_day = EXCLUDED.birthday_day,
                region = EXCLUDED.region, city = EXCLUDED.city, tags = EXCLUDED.tags, marketing_consent = EXCLUDED.marketing_consent
            WHERE customers.profile_version < EXCLUDED.profile_version
               OR (customers.registered_at IS NULL AND EXCLUDED.registered_at IS NOT NULL AND customers.profile_version = EXCLUDED.profile_version)
               -- Rows written before the day was kept (migration 0005) take it from the next copy of the same version (a rebuild).
               OR (customers.birthday_day IS NULL AND EXCLUDED.birthday_day IS NOT NULL AND customers.profile_version = EXCLUDED.profile_version)
            """, new
        {
            p.CustomerId, p.Version, p.RegisteredAt, BirthdayMonth = (short?)p.Birthday?.Month, BirthdayDay = (short?)p.Birthday?.Day, p.Region, p.City, Tags = p.Tags.ToArray(), p.MarketingConsent,
        }, tx, cancellationToken: ct));

    public static Task UpsertOrderAsync(NpgsqlConnection connection, NpgsqlTransaction? tx, OrderData o, string timeZone, CancellationToken ct) =>
        UpsertOrdersAsync(connection, tx, [o], timeZone, ct);

    /// <summary>
    /// Orders and their lines in one round trip whatever their number (the batch consumer and the rebuild write many at
    /// once), then their customers' months in the roll-up. The same order twice in <paramref name="orders"/> is written once.
    /// </summary>
    public static async Task UpsertOrdersAsync(NpgsqlConnection connection, NpgsqlTransaction? tx, IReadOnlyList<OrderData> orders, string timeZone,
        CancellationToken ct)
    {
        // ON CONFLICT cannot touch one row twice in a statement: the last copy of an order wins (they are the same event).
        var unique = orders.GroupBy(o => o.OrderId).Select(g => g.Last()).ToList();
        if (unique.Count == 0) return;
        var lines = unique.SelectMany(o => o.Lines.Select((l, i) => (o.OrderId, LineNo: i + 1, Line: l))).ToList();
        // One round trip: the orders, their lines, then their customers' months (which see both).
        await connection.ExecuteAsync(new CommandDefinition("""
            INSERT INTO orders (order_id, customer_id, external_order_id, store_id, channel, amount_paid, amount_refunded, paid_at)
            SELECT * FROM unnest(@ids, @customers, @externalIds, @stores, @channels, @paid, @refunded, @paidAts)
            ON CONFLICT (order_id) DO UPDATE SET
                external_order_id = EXCLUDED.external_order_id, store_id = EXCLUDED.store_id, channel = EXCLUDED.channel,
                amount_paid = EXCLUDED.amount_paid, paid_at = EXCLUDED.paid_at,
                amount_refunded = greatest(orders.amount_refunded, EXCLUDED.amount_refunded);
            INSERT INTO order_lines (order_id, line_no, sku, product_name, quantity, unit_price)
            SELECT * FROM unnest(@orderIds, @lineNos, @skus, @names, @quantities, @prices) ON CONFLICT DO NOTHING;
            """ + SalesRollup.RefreshSql, new
        {
            ids = unique.Select(o => o.OrderId).ToArray(), customers = unique.Select(o => o.CustomerId).ToArray(),
            externalIds = unique.Select(o => o.ExternalOrderId).ToArray(), stores = unique.Select(o => o.StoreId).ToArray(),
            channels = unique.Select(o => o.Channel).ToArray(), paid = unique.Select(o => o.AmountPaid).ToArray(),
            refunded = unique.Select(o => o.AmountRefunded).ToArray(), paidAts = unique.Select(o => Utc(o.PaidAt)).ToArray(),
            orderIds = lines.Select(l => l.OrderId).ToArray(), lineNos = lines.Select(l => l.LineNo).ToArray(),
            skus = lines.Select(l => l.Line.Sku).ToArray(), names = lines.Select(l => l.Line.ProductName).ToArray(),
            quantities = lines.Select(l => l.Line.Quantity).ToArray(), prices = lines.Select(l => l.Line.UnitPrice).ToArray(), timeZone,
        }, tx, cancellationToken: ct));
    }

    /// <summary>A refund: the order's refund total becomes the greatest seen (a refund overtaking its payment leaves a placeholder row).</summary>
    public static async Task ApplyRefundAsync(NpgsqlConnection connection, NpgsqlTransaction? tx, OrderRefunded r, string timeZone, CancellationToken ct)
    {
        var paid = await connection.QuerySingleAsync<(Guid CustomerId, DateTime? PaidAt)>(new CommandDefinition("""
            INSERT INTO orders (order_id, customer_id, external_order_id, amount_paid, amount_refunded)
            VALUES (@OrderId, @CustomerId, @ExternalOrderId, @AmountPaid, @TotalRefunded)
            ON CONFLICT (order_id) DO UPDATE SET amount_refunded = greatest(orders.amount_refunded, EXCLUDED.amount_refunded)
            RETURNING customer_id, paid_at
            """, new { r.OrderId, r.CustomerId, r.ExternalOrderId, r.AmountPaid, r.TotalRefunded }, tx, cancellationToken: ct));
        // Not paid yet (the refund overtook its payment): the payment's write will count it.
        if (paid.PaidAt is { } at) await SalesRollup.RefreshAsync(connection, tx, [(paid.CustomerId, at)], timeZone, ct);
    }

    public static Task ApplyPointsAsync(NpgsqlConnection connection, NpgsqlTransaction? tx, Guid customerId, long balance, long sequence, DateTimeOffset at,
        CancellationToken ct) =>
        connection.ExecuteAsync(new CommandDefinition("""
            INSERT INTO customers (customer_id, points_balance, points_seq, points_at) VALUES (@customerId, @balance, @sequence, @at)
            ON CONFLICT (customer_id) DO UPDATE SET points_balance = EXCLUDED.points_balance, points_seq = EXCLUDED.points_seq, points_at = EXCLUDED.points_at
            WHERE (customers.points_seq, coalesce(customers.points_at, '-infinity')) < (EXCLUDED.points_seq, EXCLUDED.points_at)
            """, new { customerId, balance, sequence, at = at.UtcDateTime }, tx, cancellationToken: ct));

    public static Task ApplyTierAsync(NpgsqlConnection connection, NpgsqlTransaction? tx, TierChanged t, CancellationToken ct) =>
        ApplyTiersAsync(connection, tx, [t], ct);

    /// <summary>
    /// Many TierChanged in one statement: per customer the event with the highest (Sequence, timestamp) of the set, written
    /// if it is newer than the row's; customers in id order (two concurrent sets lock shared rows in the same order).
    /// </summary>
    public static Task ApplyTiersAsync(NpgsqlConnection connection, NpgsqlTransaction? tx, IReadOnlyList<TierChanged> events, CancellationToken ct) =>
        events.Count == 0 ? Task.CompletedTask : connection.ExecuteAsync(new CommandDefinition("""
            INSERT INTO customers (customer_id, tier, tier_seq, tier_at)
            SELECT DISTINCT ON (customer_id) customer_id, tier, seq, at
            FROM unnest(@customers::uuid[], @tiers::text[], @seqs::bigint[], @ats::timestamptz[]) AS t(customer_id, tier, seq, at)
            ORDER BY customer_id, seq DESC, at DESC
            ON CONFLICT (customer_id) DO UPDATE SET tier = EXCLUDED.tier, tier_seq = EXCLUDED.tier_seq, tier_at = EXCLUDED.tier_at
            WHERE (customers.tier_seq, coalesce(customers.tier_at, '-infinity')) < (EXCLUDED.tier_seq, EXCLUDED.tier_at)
            """, new
            {
                customers = events.Select(t => t.CustomerId).ToArray(), tiers = events.Select(t => t.NewTier).ToArray(),
                seqs = events.Select(t => t.Sequence).ToArray(), ats = events.Select(t => t.ChangedAt.UtcDateTime).ToArray(),
            }, tx, cancellationToken: ct));

    private static DateTime Utc(DateTime value) => value.Kind == DateTimeKind.Utc ? value : DateTime.SpecifyKind(value.ToUniversalTime(), DateTimeKind.Utc);

    // ---- reads ----

    /// <summary>
    /// Every customer known to the read model (registered or with orders), or those carrying <paramref name="tag"/>, with
    /// their orders as of <paramref name="asOf"/> aggregated: only orders not refunded in full count, at their net value.
    /// </summary>
    public async Task<IReadOnlyList<CustomerFacts>> LoadPopulationAsync(DateTime asOf, DateTime currentFrom, DateTime windowFrom, string? tag,
        Guid? onlyCustomer, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        var rows = await connection.QueryAsync<FactsRow>(new CommandDefinition("""
            WITH o AS (
                SELECT customer_id, paid_at, amount_paid - amount_refunded AS net,
                       row_number() OVER (PARTITION BY customer_id ORDER BY paid_at, order_id) AS n
                FROM orders
                WHERE paid_at IS NOT NULL AND paid_at <= @asOf AND amount_paid > amount_refunded
                  AND (@onlyCustomer::uuid IS NULL OR customer_id = @onlyCustomer)
            ), agg AS (
                SELECT customer_id, count(*)::int AS orders, sum(net) AS net_spend, min(paid_at) AS first_order_at, max(paid_at) AS last_order_at,
                       coalesce(sum(net) FILTER (WHERE n = 1), 0) AS first_order_net,
                       (count(*) FILTER (WHERE paid_at > @currentFrom))::int AS orders_current,
                       coalesce(sum(net) FILTER (WHERE paid_at > @currentFrom), 0) AS spend_current,
                       (count(*) FILTER (WHERE paid_at > @windowFrom))::int AS orders_window,
                       coalesce(sum(net) FILTER (WHERE paid_at > @windowFrom), 0) AS spend_window
                FROM o GROUP BY customer_id
            )
            SELECT coalesce(c.customer_id, a.customer_id) AS customer_id, coalesce(a.orders, 0) AS orders, coalesce(a.net_spend, 0) AS net_spend,
                   a.first_order_at, a.last_order_at, coalesce(a.first_order_net, 0) AS first_order_net,
                   coalesce(a.orders_current, 0) AS orders_current, coalesce(a.spend_current, 0) AS spend_current,
                   coalesce(a.orders_window, 0) AS orders_window, coalesce(a.spend_window, 0) AS spend_window,
                   c.tier, c.points_balance, c.birthday_month, c.region, coalesce(c.tags, '{}') AS tags, coalesce(c.marketing_consent, false) AS marketing_consent
            FROM (SELECT * FROM customers WHERE @onlyCustomer::uuid IS NULL OR customer_id = @onlyCustomer) c
            FULL JOIN agg a ON a.customer_id = c.customer_id
            WHERE @tag::text IS NULL OR @tag = ANY (c.tags)
            """, new { asOf, currentFrom, windowFrom, tag, onlyCustomer }, cancellationToken: ct, commandTimeout: 120));
        return rows.Select(r => r.ToFacts()).ToList();
    }

    /// <summary>Net values of the orders paid in (from, asOf] (not refunded in full), of the customers carrying <paramref name="tag"/> if given.</summary>
    public async Task<IReadOnlyList<decimal>> LoadOrderValuesAsync(DateTime from, DateTime asOf, string? tag, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        var values = await connection.QueryAsync<decimal>(new CommandDefinition("""
            SELECT o.amount_paid - o.amount_refunded FROM orders o
            WHERE o.paid_at > @from AND o.paid_at <= @asOf AND o.amount_paid > o.amount_refunded
              AND (@tag::text IS NULL OR EXISTS (SELECT 1 FROM customers c WHERE c.customer_id = o.customer_id AND @tag = ANY (c.tags)))
            """, new { from, asOf, tag }, cancellationToken: ct, commandTimeout: 120));
        return values.ToList();
    }

    public async Task<bool> IsKnownAsync(Guid customerId, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        return await connection.ExecuteScalarAsync<bool>(new CommandDefinition("""
            SELECT EXISTS (SELECT 1 FROM customers WHERE customer_id = @customerId) OR EXISTS (SELECT 1 FROM orders WHERE customer_id = @customerId)
            """, new { customerId }, cancellationToken: ct));
    }

    private sealed class FactsRow
    {
        public Guid CustomerId { get; init; }
        public int Orders { get; init; }
        public decimal NetSpend { get; init; }
        public DateTime? FirstOrderAt { get; init; }
        public DateTime? LastOrderAt { get; init; }
        public decimal FirstOrderNet { get; init; }
        public int OrdersCurrent { get; init; }
        public decimal SpendCurrent { get; init; }
        public int OrdersWindow { get; init; }
        public decimal SpendWindow { get; init; }
        public string? Tier { get; init; }
        public long? PointsBalance { get; init; }
        public short? BirthdayMonth { get; init; }
        public string? Region { get; init; }
        public string[] Tags { get; init; } = [];
        public bool MarketingConsent { get; init; }

        public CustomerFacts ToFacts() => new(CustomerId, Orders, NetSpend, FirstOrderAt, LastOrderAt, FirstOrderNet, OrdersCurrent, SpendCurrent,
            OrdersWindow, SpendWindow, Tier, PointsBalance, BirthdayMonth, Region, Tags, MarketingConsent);
    }
}
