using Dapper;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Crm.Campaigns.Reports;

/// <summary>
/// The monthly roll-up (sales_customer_months, migrations 0006 and 0007): per brand-time month and customer the counted orders,
/// net total, largest and smallest ticket, first and last paid order (the recompute reads its facts from these). An order or refund write recomputes its customer's month from the orders (so it is
/// idempotent and order independent like the rest of the read model); <see cref="RefillAsync"/> recomputes every month.
/// </summary>
public static class SalesRollup
{
    /// <summary>
    /// Recomputes the months of the given orders' customers (each (customer, paid_at) names the customer's brand-time month
    /// of paid_at). Takes transaction-scoped locks on the customers first, in one order (so two batches never deadlock), and
    /// reads the orders in the next statement: two writers of the same customer's month never both miss each other's order,
    /// the second waits for the first to commit and then sees it.
    /// </summary>
    public static Task RefreshAsync(NpgsqlConnection connection, NpgsqlTransaction? tx, IReadOnlyCollection<(Guid CustomerId, DateTime PaidAt)> orders,
        string timeZone, CancellationToken ct) =>
        orders.Count == 0 ? Task.CompletedTask : connection.ExecuteAsync(new CommandDefinition(RefreshSql, new
        {
            customers = orders.Select(o => o.CustomerId).ToArray(), paidAts = orders.Select(o => Utc(o.PaidAt)).ToArray(), timeZone,
        }, tx, cancellationToken: ct));

    /// <summary>The statements of <see cref="RefreshAsync"/> over @customers, @paidAts (uuid[], timestamptz[] in pairs) and @timeZone, to send with others.</summary>
    public const string RefreshSql = """
            SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT hashtextextended(c::text, 6) AS k FROM unnest(@customers) c) x ORDER BY k;
            WITH b AS (
                SELECT DISTINCT customer_id, m AS month, m::timestamp AT TIME ZONE @timeZone AS lo, (m + interval '1 month')::timestamp AT TIME ZONE @timeZone AS hi
                FROM (SELECT c AS customer_id, date_trunc('month', p AT TIME ZONE @timeZone)::date AS m FROM unnest(@customers, @paidAts) AS u(c, p)) x
            ), agg AS (
                SELECT b.customer_id, b.month, count(o.order_id)::int AS orders, coalesce(sum(o.amount_paid - o.amount_refunded), 0) AS net,
                       max(o.amount_paid - o.amount_refunded) AS max_ticket, min(o.amount_paid - o.amount_refunded) AS min_ticket,
                       min(o.paid_at) AS first_paid_at, (min(ARRAY[extract(epoch FROM o.paid_at)::numeric, o.amount_paid - o.amount_refunded]))[2] AS first_net,
                       max(o.paid_at) AS last_paid_at
                FROM b LEFT JOIN orders o ON o.customer_id = b.customer_id AND o.paid_at >= b.lo AND o.paid_at < b.hi AND o.amount_paid > o.amount_refunded
                GROUP BY b.customer_id, b.month
            ), gone AS (
                DELETE FROM sales_customer_months s USING agg
                WHERE agg.orders = 0 AND s.month = agg.month AND s.customer_id = agg.customer_id
            )
            INSERT INTO sales_customer_months (month, customer_id, orders, net, max_ticket, min_ticket, first_paid_at, first_net, last_paid_at)
            SELECT month, customer_id, orders, net, max_ticket, min_ticket, first_paid_at, first_net, last_paid_at FROM agg WHERE orders > 0
            ON CONFLICT (month, customer_id) DO UPDATE SET orders = EXCLUDED.orders, net = EXCLUDED.net,
                max_ticket = EXCLUDED.max_ticket, min_ticket = EXCLUDED.min_ticket,
                first_paid_at = EXCLUDED.first_paid_at, first_net = EXCLUDED.first_net, last_paid_at = EXCLUDED.last_paid_at
            """;

    /// <summary>Recomputes the whole roll-up from the orders in one transaction and records the time zone it was cut in.</summary>
    public static async Task RefillAsync(NpgsqlDataSource dataSource, string timeZone, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition("""
            SET LOCAL work_mem = '256MB';
            LOCK TABLE sales_customer_months IN ACCESS EXCLUSIVE MODE;
            TRUNCATE sales_customer_months;
            INSERT INTO sales_customer_months (month, customer_id, orders, net, max_ticket, min_ticket, first_paid_at, first_net, last_paid_at)
            SELECT date_trunc('month', paid_at AT TIME ZONE @timeZone)::date, customer_id, count(*), sum(amount_paid - amount_refunded),
                   max(amount_paid - amount_refunded), min(amount_paid - amount_refunded),
                   min(paid_at), (min(ARRAY[extract(epoch FROM paid_at)::numeric, amount_paid - amount_refunded]))[2], max(paid_at)
            FROM orders WHERE paid_at IS NOT NULL AND amount_paid > amount_refunded
            GROUP BY 1, 2;
            INSERT INTO sales_rollup_state (time_zone, filled_at) VALUES (@timeZone, now())
            ON CONFLICT (id) DO UPDATE SET time_zone = EXCLUDED.time_zone, filled_at = EXCLUDED.filled_at;
            ANALYZE sales_customer_months;
            """, new { timeZone }, tx, commandTimeout: 3600, cancellationToken: ct));
        await tx.CommitAsync(ct);
    }

    /// <summary>The time zone the roll-up was last filled in, or null when it never was.</summary>
    public static async Task<string?> FilledZoneAsync(NpgsqlConnection connection, CancellationToken ct) =>
        await connection.ExecuteScalarAsync<string?>(new CommandDefinition("SELECT time_zone FROM sales_rollup_state", cancellationToken: ct));

    private static DateTime Utc(DateTime value) => value.Kind == DateTimeKind.Utc ? value : DateTime.SpecifyKind(value.ToUniversalTime(), DateTimeKind.Utc);
}

/// <summary>At start-up: fills the roll-up if it was never filled or was cut in another time zone than the brand's now.</summary>
public sealed class SalesRollupFill(NpgsqlDataSource dataSource, IOptions<CampaignsOptions> options, ILogger<SalesRollupFill> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var zone = options.Value.TimeZone;
        try
        {
            await using (var connection = await dataSource.OpenConnectionAsync(stoppingToken))
                if (await SalesRollup.FilledZoneAsync(connection, stoppingToken) == zone) return;
            var watch = System.Diagnostics.Stopwatch.StartNew();
            await SalesRollup.RefillAsync(dataSource, zone, stoppingToken);
            logger.LogInformation("Monthly sales roll-up filled in {Zone} in {Seconds:0.0} s", zone, watch.Elapsed.TotalSeconds);
        }
        catch (Exception e) when (!stoppingToken.IsCancellationRequested)
        {
            // The reports scan the orders until a fill succeeds (the next start or rebuild).
            logger.LogError(e, "Filling the monthly sales roll-up failed");
        }
    }
}
