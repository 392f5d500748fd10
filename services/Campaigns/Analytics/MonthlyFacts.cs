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
        WITH rows AS (
            SELECT customer_id, orders, net, first_paid_at AS first_at, first_net, last_paid_at AS last_at,
                   month > $5 AS in_current, month > $6 AS in_window
            FROM sales_customer_months
            WHERE month < $4 AND month <> $5 AND month <> $6
            UNION ALL
            SELECT customer_id, 1, amount_paid - amount_refunded, paid_at, amount_paid - amount_refunded, paid_at, paid_at > $2, paid_at > $3
            FROM orders
            WHERE ((paid_at >= $7 AND paid_at < $8) OR (paid_at >= $9 AND paid_at < $10) OR (paid_at >= $11 AND paid_at < $12))
              AND paid_at <= $1 AND amount_paid > amount_refunded
        ), agg AS (
            -- Each row's net goes into one of three sums (in neither window, in one, in both): one numeric addition per row
            -- instead of three; the windows and the total are put together from them below.
            SELECT customer_id, sum(orders)::int AS orders, min(first_at) AS first_order_at, max(last_at) AS last_order_at,
                   (min(ARRAY[extract(epoch FROM first_at)::numeric, first_net]))[2] AS first_order_net,
                   coalesce(sum(orders) FILTER (WHERE in_current), 0)::int AS orders_current,
                   coalesce(sum(orders) FILTER (WHERE in_window), 0)::int AS orders_window,
                   coalesce(sum(net) FILTER (WHERE NOT in_current AND NOT in_window), 0) AS net_neither,
                   coalesce(sum(net) FILTER (WHERE in_current <> in_window), 0) AS net_one,
                   coalesce(sum(net) FILTER (WHERE in_current AND in_window), 0) AS net_both
            FROM rows GROUP BY customer_id
        )
        -- A row in one window only is in the longer one: the current-value window when it starts first ($2 < $3), else the RFM window.
        SELECT coalesce(c.customer_id, a.customer_id), coalesce(a.orders, 0), coalesce(a.net_neither + a.net_one + a.net_both, 0),
               a.first_order_at, a.last_order_at, coalesce(a.first_order_net, 0), coalesce(a.orders_current, 0),
               coalesce(a.net_both + CASE WHEN $2 < $3 THEN a.net_one ELSE 0 END, 0), coalesce(a.orders_window, 0),
               coalesce(a.net_both + CASE WHEN $2 < $3 THEN 0 ELSE a.net_one END, 0), c.tier
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
