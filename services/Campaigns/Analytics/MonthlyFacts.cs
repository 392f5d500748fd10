using NpgsqlTypes;

namespace Crm.Campaigns.Analytics;

/// <summary>
/// The recompute's per-customer facts from the monthly roll-up (sales_customer_months) instead of every order: the months
/// before as-of's month are summed whole, and the only months a window boundary or as-of cuts through — as-of's month and
/// the months of the two window starts — are read from the orders (a few months' orders, by the paid_at index), with the
/// same filters as the from-orders query. The result is the same row for row: the months carry order counts, net sums and
/// each month's first (smallest (paid_at, net)) and last order. Columns as <see cref="ScoreRecompute"/>'s from-orders query.
/// </summary>
public static class MonthlyFacts
{
    public const string Sql = """
        WITH months AS (
            -- Each month's net goes into one of three sums (before both window starts, between them, after both): one numeric
            -- addition per row instead of three, and the two windows and the total are put together from them below.
            SELECT customer_id, sum(orders)::int AS orders, min(first_paid_at) AS first_at, max(last_paid_at) AS last_at,
                   (min(ARRAY[extract(epoch FROM first_paid_at)::numeric, first_net]))[2] AS first_net,
                   coalesce(sum(orders) FILTER (WHERE month > $5), 0)::int AS orders_current,
                   coalesce(sum(orders) FILTER (WHERE month > $6), 0)::int AS orders_window,
                   coalesce(sum(net) FILTER (WHERE month <= least($5, $6)), 0) AS net_old,
                   coalesce(sum(net) FILTER (WHERE month > least($5, $6) AND month <= greatest($5, $6)), 0) AS net_mid,
                   coalesce(sum(net) FILTER (WHERE month > greatest($5, $6)), 0) AS net_recent
            FROM sales_customer_months
            WHERE month < $4 AND month <> $5 AND month <> $6
            GROUP BY customer_id
        ), edges AS (
            SELECT customer_id, count(*)::int AS orders, sum(amount_paid - amount_refunded) AS net_spend, min(paid_at) AS first_at, max(paid_at) AS last_at,
                   (min(ARRAY[extract(epoch FROM paid_at)::numeric, amount_paid - amount_refunded]))[2] AS first_net,
                   (count(*) FILTER (WHERE paid_at > $2))::int AS orders_current, coalesce(sum(amount_paid - amount_refunded) FILTER (WHERE paid_at > $2), 0) AS spend_current,
                   (count(*) FILTER (WHERE paid_at > $3))::int AS orders_window, coalesce(sum(amount_paid - amount_refunded) FILTER (WHERE paid_at > $3), 0) AS spend_window
            FROM orders
            WHERE ((paid_at >= $7 AND paid_at < $8) OR (paid_at >= $9 AND paid_at < $10) OR (paid_at >= $11 AND paid_at < $12))
              AND paid_at <= $1 AND amount_paid > amount_refunded
            GROUP BY customer_id
        ), agg AS (
            SELECT coalesce(m.customer_id, e.customer_id) AS customer_id,
                   coalesce(m.orders, 0) + coalesce(e.orders, 0) AS orders,
                   coalesce(m.net_old + m.net_mid + m.net_recent, 0) + coalesce(e.net_spend, 0) AS net_spend,
                   least(m.first_at, e.first_at) AS first_order_at, greatest(m.last_at, e.last_at) AS last_order_at,
                   CASE WHEN e.first_at IS NULL OR (m.first_at, m.first_net) <= (e.first_at, e.first_net) THEN m.first_net ELSE e.first_net END AS first_order_net,
                   coalesce(m.orders_current, 0) + coalesce(e.orders_current, 0) AS orders_current,
                   coalesce(m.net_recent + CASE WHEN $5 < $6 THEN m.net_mid ELSE 0 END, 0) + coalesce(e.spend_current, 0) AS spend_current,
                   coalesce(m.orders_window, 0) + coalesce(e.orders_window, 0) AS orders_window,
                   coalesce(m.net_recent + CASE WHEN $5 < $6 THEN 0 ELSE m.net_mid END, 0) + coalesce(e.spend_window, 0) AS spend_window
            FROM months m FULL JOIN edges e ON e.customer_id = m.customer_id
        )
        SELECT coalesce(c.customer_id, a.customer_id), coalesce(a.orders, 0), coalesce(a.net_spend, 0), a.first_order_at, a.last_order_at,
               coalesce(a.first_order_net, 0), coalesce(a.orders_current, 0), coalesce(a.spend_current, 0), coalesce(a.orders_window, 0),
               coalesce(a.spend_window, 0), c.tier
        FROM customers c FULL JOIN agg a ON a.customer_id = c.customer_id
        """;

    /// <summary>Parameters $4 to $12 (after as-of and the two window starts): as-of's month and the window starts' months, as dates and as UTC ranges.</summary>
    public static IEnumerable<(object Value, NpgsqlDbType Type)> MonthParameters(Engine engine, DateTime asOf, DateTime currentFrom, DateTime windowFrom)
    {
        DateTime MonthStart(DateTime utc) { var l = engine.ToLocal(utc); return new DateTime(l.Year, l.Month, 1); }
        var months = new[] { MonthStart(asOf), MonthStart(currentFrom), MonthStart(windowFrom) };
        foreach (var m in months) yield return (DateOnly.FromDateTime(m), NpgsqlDbType.Date);
        foreach (var m in months)
        {
            yield return (engine.ToUtc(m), NpgsqlDbType.TimestampTz);
            yield return (engine.ToUtc(m.AddMonths(1)), NpgsqlDbType.TimestampTz);
        }
    }
}
