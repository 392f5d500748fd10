using Dapper;
using Npgsql;

namespace Crm.Campaigns.Reports;

public enum PeriodUnit { Year, Quarter, Month, IsoWeek }

public sealed record PeriodSales(DateTime StartLocal, decimal Total, int Orders, decimal MaxTicket, decimal MinTicket, int Customers)
{
    public decimal AverageTicket => Orders == 0 ? 0 : decimal.Round(Total / Orders, 2, MidpointRounding.AwayFromZero);
    public double Frequency => Customers == 0 ? 0 : Math.Round((double)Orders / Customers, 4);
}

public sealed record SkuRow(string Sku, string? ProductName, long Quantity, decimal Revenue);

public sealed record SkuGrowthRow(string Sku, string? ProductName, long BaseQuantity, decimal BaseRevenue, long Quantity, decimal Revenue, double GrowthPercent);

/// <summary>
/// Sales over brand-time date ranges, from the read model's orders at their net value (paid − refunded; orders refunded in
/// full are left out). Periods are truncated in the brand's time zone by Postgres (date_trunc on the local time: 'week'
/// is the ISO week starting Monday), so an order at 23:30 on 31 December brand time belongs to the old year.
/// A SKU's revenue is its share of the order's net amount by list value (quantity × unit price).
/// An unfiltered report by month, quarter or year over whole months reads the monthly roll-up (<see cref="SalesRollup"/>)
/// instead of the orders, once the roll-up has been filled in the same time zone.
/// </summary>
public sealed class SalesReports(NpgsqlDataSource dataSource)
{
    public static string Unit(PeriodUnit unit) => unit switch
    {
        PeriodUnit.Year => "year",
        PeriodUnit.Quarter => "quarter",
        PeriodUnit.Month => "month",
        _ => "week",
    };

    public static string Label(PeriodUnit unit, DateTime start) => unit switch
    {
        PeriodUnit.Year => start.Year.ToString(System.Globalization.CultureInfo.InvariantCulture),
        PeriodUnit.Quarter => $"{start.Year}-Q{(start.Month - 1) / 3 + 1}",
        PeriodUnit.Month => $"{start.Year}-{start.Month:00}",
        _ => $"{System.Globalization.ISOWeek.GetYear(start)}-W{System.Globalization.ISOWeek.GetWeekOfYear(start):00}",
    };

    private const string Filters = """
        paid_at >= @from AND paid_at < @to AND amount_paid > amount_refunded
        AND (@store::text IS NULL OR store_id = @store) AND (@channel::text IS NULL OR channel = @channel)
        """;

    /// <summary>Sales per period in [from, to) (UTC instants of brand-time midnights), and the whole range.</summary>
    public async Task<(IReadOnlyList<PeriodSales> Periods, PeriodSales Total)> ReportAsync(PeriodUnit unit, string timeZone, DateTime from, DateTime to,
        string? store, string? channel, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        if (RollupMonths(unit, timeZone, from, to, store, channel) is { } months && await SalesRollup.FilledZoneAsync(connection, ct) == timeZone)
            return await FromRollupAsync(connection, unit, months.From, months.To, ct);
        var args = new { unit = Unit(unit), tz = timeZone, from, to, store, channel };
        // One pass over the range: the periods and the whole range (the empty grouping set) from the same scan.
        var rows = (await connection.QueryAsync<PeriodRow>(new CommandDefinition($"""
            SELECT start_local, grouping(start_local) = 1 AS is_total, coalesce(sum(net), 0) AS total, count(*)::int AS orders,
                   coalesce(max(net), 0) AS max_ticket, coalesce(min(net), 0) AS min_ticket, count(DISTINCT customer_id)::int AS customers
            FROM (SELECT date_trunc(@unit, paid_at AT TIME ZONE @tz) AS start_local, amount_paid - amount_refunded AS net, customer_id
                  FROM orders WHERE {Filters}) o
            GROUP BY GROUPING SETS ((start_local), ())
            ORDER BY is_total, start_local
            """, args, cancellationToken: ct, commandTimeout: 120))).ToList();
        var periods = rows.Where(r => !r.IsTotal).ToList();
        var total = rows.Single(r => r.IsTotal);
        return (periods.Select(p => p.ToSales()).ToList(), total.ToSales());
    }

    /// <summary>
    /// The brand-time months [From, To) of a request the roll-up can answer: by month, quarter or year, without a store or
    /// channel filter, over whole months. Null otherwise (the report scans the orders).
    /// </summary>
    private static (DateOnly From, DateOnly To)? RollupMonths(PeriodUnit unit, string timeZone, DateTime from, DateTime to, string? store, string? channel)
    {
        if (unit == PeriodUnit.IsoWeek || store is not null || channel is not null) return null;
        var zone = TimeZoneInfo.FindSystemTimeZoneById(timeZone);
        var localFrom = TimeZoneInfo.ConvertTimeFromUtc(DateTime.SpecifyKind(from, DateTimeKind.Utc), zone);
        var localTo = TimeZoneInfo.ConvertTimeFromUtc(DateTime.SpecifyKind(to, DateTimeKind.Utc), zone);
        static bool MonthStart(DateTime t) => t.Day == 1 && t.TimeOfDay == TimeSpan.Zero;
        return MonthStart(localFrom) && MonthStart(localTo) && localFrom < localTo
            ? (DateOnly.FromDateTime(localFrom), DateOnly.FromDateTime(localTo)) : null;
    }

    /// <summary>
    /// The report from the roll-up: the periods in one pass over the months' rows (a customer counts once per period), the
    /// whole range's distinct customers in a second, the range's totals from the periods'.
    /// </summary>
    private static async Task<(IReadOnlyList<PeriodSales>, PeriodSales)> FromRollupAsync(NpgsqlConnection connection, PeriodUnit unit, DateOnly from,
        DateOnly to, CancellationToken ct)
    {
        await using var tx = await connection.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, ct);
        // The range's customers are a hash of up to a million ids: in memory, not spilled to disk.
        await connection.ExecuteAsync(new CommandDefinition("SET LOCAL work_mem = '256MB'", transaction: tx, cancellationToken: ct));
        var args = new { unit = Unit(unit), from = from.ToDateTime(TimeOnly.MinValue), to = to.ToDateTime(TimeOnly.MinValue) };
        // By month each row is one customer's month already; by quarter or year a customer's months are merged first.
        var source = unit == PeriodUnit.Month
            ? "SELECT month::timestamp AS start_local, customer_id, orders, net, max_ticket, min_ticket FROM sales_customer_months WHERE month >= @from::date AND month < @to::date"
            : """
              SELECT date_trunc(@unit, month::timestamp) AS start_local, customer_id, sum(orders) AS orders, sum(net) AS net,
                     max(max_ticket) AS max_ticket, min(min_ticket) AS min_ticket
              FROM sales_customer_months WHERE month >= @from::date AND month < @to::date GROUP BY 1, 2
              """;
        var periods = (await connection.QueryAsync<PeriodRow>(new CommandDefinition($"""
            SELECT start_local, sum(net) AS total, sum(orders)::int AS orders, max(max_ticket) AS max_ticket, min(min_ticket) AS min_ticket,
                   count(*)::int AS customers
            FROM ({source}) p GROUP BY start_local ORDER BY start_local
            """, args, tx, cancellationToken: ct, commandTimeout: 120))).Select(p => p.ToSales()).ToList();
        var customers = await connection.ExecuteScalarAsync<int>(new CommandDefinition("""
            SELECT count(*)::int FROM (SELECT customer_id FROM sales_customer_months WHERE month >= @from::date AND month < @to::date GROUP BY customer_id) c
            """, args, tx, cancellationToken: ct, commandTimeout: 120));
        await tx.CommitAsync(ct);
        var total = new PeriodSales(default, periods.Sum(p => p.Total), periods.Sum(p => p.Orders), periods.Count > 0 ? periods.Max(p => p.MaxTicket) : 0,
            periods.Count > 0 ? periods.Min(p => p.MinTicket) : 0, customers);
        return (periods, total);
    }

    private static string SkuTotals(string suffix) => $"""
        SELECT l.sku, max(l.product_name) AS product_name, sum(l.quantity)::bigint AS quantity,
               round(coalesce(sum(o.net * (l.quantity * l.unit_price) / nullif(o.list_total, 0)), 0), 2) AS revenue
        FROM (SELECT o.order_id, o.amount_paid - o.amount_refunded AS net,
                     (SELECT sum(x.quantity * x.unit_price) FROM order_lines x WHERE x.order_id = o.order_id) AS list_total
              FROM orders o
              WHERE o.paid_at >= @from{suffix} AND o.paid_at < @to{suffix} AND o.amount_paid > o.amount_refunded
                AND (@store::text IS NULL OR o.store_id = @store)) o
        JOIN order_lines l ON l.order_id = o.order_id
        GROUP BY l.sku
        """;

    public async Task<IReadOnlyList<SkuRow>> TopSkusAsync(bool byRevenue, DateTime from, DateTime to, string? store, int offset, int limit, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        var order = byRevenue ? "revenue DESC, quantity DESC" : "quantity DESC, revenue DESC";
        var rows = await connection.QueryAsync<SkuRow>(new CommandDefinition($"""
            SELECT sku, product_name AS productname, quantity, revenue FROM ({SkuTotals("")}) t ORDER BY {order}, sku LIMIT @limit OFFSET @offset
            """, new { from, to, store, offset, limit }, cancellationToken: ct, commandTimeout: 120));
        return rows.ToList();
    }

    /// <summary>SKUs sold in the base period, by revenue growth into the later one (a SKU not sold later has −100%).</summary>
    public async Task<IReadOnlyList<SkuGrowthRow>> FastestGrowingAsync(DateTime baseFrom, DateTime baseTo, DateTime from, DateTime to, string? store,
        int offset, int limit, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        var rows = await connection.QueryAsync<SkuGrowthRow>(new CommandDefinition($"""
            WITH b AS ({SkuTotals("Base")}), c AS ({SkuTotals("")})
            SELECT b.sku, coalesce(c.product_name, b.product_name) AS productname, b.quantity AS basequantity, b.revenue AS baserevenue,
                   coalesce(c.quantity, 0) AS quantity, coalesce(c.revenue, 0) AS revenue,
                   round((coalesce(c.revenue, 0) - b.revenue) / b.revenue * 100, 4)::float8 AS growthpercent
            FROM b LEFT JOIN c ON c.sku = b.sku
            WHERE b.revenue > 0
            ORDER BY growthpercent DESC, b.sku LIMIT @limit OFFSET @offset
            """, new { fromBase = baseFrom, toBase = baseTo, from, to, store, offset, limit }, cancellationToken: ct, commandTimeout: 120));
        return rows.ToList();
    }

    private sealed class PeriodRow
    {
        public DateTime? StartLocal { get; init; }
        public bool IsTotal { get; init; }
        public decimal Total { get; init; }
        public int Orders { get; init; }
        public decimal MaxTicket { get; init; }
        public decimal MinTicket { get; init; }
        public int Customers { get; init; }
        public PeriodSales ToSales() => new(StartLocal ?? default, Total, Orders, MaxTicket, MinTicket, Customers);
    }
}
