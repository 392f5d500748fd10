using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Npgsql;
using NpgsqlTypes;

namespace Crm.Campaigns.Analytics;

/// <summary>
/// The recompute's per-customer facts from the monthly roll-up (sales_customer_months) instead of every order: the months
/// before as-of's month are summed whole, and the only months a window boundary or as-of cuts through — as-of's month and
/// the months of the two window starts — are read from the orders (a few months' orders, by the paid_at index), with the
/// same filters as the from-orders query. The result is the same row for row: the months carry order counts, net sums and
/// each month's first (smallest (paid_at, net)) and last order.
/// The rows are summed here rather than by a GROUP BY in Postgres: the aggregate's numeric sums and its (paid_at, net) minimum
/// cost Postgres about twice the CPU of sending the rows, and in .NET they are a dictionary lookup and a few additions per row.
/// </summary>
public static class MonthlyFacts
{
    /// <summary>
    /// One row per roll-up month in blocks [$13, $14) of the table: customer, orders, net, first (paid_at, net), last paid_at,
    /// in the two windows. A row of one order (most of them) sends no first net and last paid_at: they are its net and first
    /// paid_at, and neither side then spends CPU on two more values per row.
    /// </summary>
    private const string MonthRowsSql = """
        SELECT customer_id, orders, net, first_paid_at, CASE WHEN orders > 1 THEN first_net END, CASE WHEN orders > 1 THEN last_paid_at END,
               month > $5, month > $6
        FROM sales_customer_months
        WHERE ctid >= $13 AND ctid < $14 AND month < $4 AND month <> $5 AND month <> $6
        """;

    /// <summary>The same row for each counted order of the months a window boundary or as-of cuts through.</summary>
    private const string BoundaryOrdersSql = """
        SELECT customer_id, 1, amount_paid - amount_refunded, paid_at, NULL, NULL, paid_at > $2, paid_at > $3
        FROM orders
        WHERE ((paid_at >= $7 AND paid_at < $8) OR (paid_at >= $9 AND paid_at < $10) OR (paid_at >= $11 AND paid_at < $12))
          AND paid_at <= $1 AND amount_paid > amount_refunded
        """;

    private const string CustomersSql = """
        SELECT customer_id, tier FROM customers WHERE ($1::uuid IS NULL OR customer_id >= $1) AND ($2::uuid IS NULL OR customer_id < $2)
        """;

    /// <summary>One customer's sums so far; the first order is the smallest (paid_at, net).</summary>
    private struct Sums
    {
        public int Orders, OrdersCurrent, OrdersWindow;
        public decimal Net, SpendCurrent, SpendWindow, FirstNet;
        public DateTime First, Last;
        public bool HasProfile;

        public void Add(in Sums other)
        {
            if (other.First < First || (other.First == First && other.FirstNet < FirstNet)) (First, FirstNet) = (other.First, other.FirstNet);
            if (other.Last > Last) Last = other.Last;
            Orders += other.Orders;
            Net += other.Net;
            OrdersCurrent += other.OrdersCurrent;
            SpendCurrent += other.SpendCurrent;
            OrdersWindow += other.OrdersWindow;
            SpendWindow += other.SpendWindow;
        }
    }

    /// <summary>
    /// Every customer known to the read model (a customers row or a counted order) with the facts of the roll-up and the
    /// boundary months' orders summed, as <see cref="ScoreRecompute"/>'s from-orders query gives them. <paramref name="parameters"/>
    /// are $1 to $12. On <paramref name="parts"/> connections at once, each on its own thread (Postgres sending rows while
    /// this process sums others: both cores busy): the roll-up is cut into ranges of its blocks, so each backend scans only its
    /// part of the table (cut by customer, every backend scanned all of it and kept half), and the partial sums are then
    /// added up; the customers are read in ranges of their ids. Every connection reads in one exported snapshot, so a roll-up
    /// row updated meanwhile (its new version in another block) is seen exactly once.
    /// </summary>
    public static async Task<List<CustomerFacts>> ReadAsync(NpgsqlDataSource dataSource, IReadOnlyList<(object Value, NpgsqlDbType Type)> parameters,
        int parts, CancellationToken ct)
    {
        parts = Math.Max(parts, 1);
        var connections = new List<NpgsqlConnection>();
        try
        {
            var lead = await dataSource.OpenConnectionAsync(ct);
            connections.Add(lead);
            await using var leadTx = await lead.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, ct);
            // No JIT: compiling the query's expressions (its cost being high) takes longer than it saves on a scan that only filters.
            await Execute(lead, "SET LOCAL jit = off", ct);
            var snapshot = parts > 1 ? (string)(await Scalar(lead, "SELECT pg_export_snapshot()", ct))! : null;
            var blocks = (long)(await Scalar(lead, "SELECT pg_relation_size('sales_customer_months') / current_setting('block_size')::bigint", ct))!;
            var (bounds, customers) = await SplitAsync(lead, parts, ct);
            for (var k = 1; k < parts; k++)
            {
                var connection = await dataSource.OpenConnectionAsync(ct);
                connections.Add(connection);
                await Execute(connection, $"BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT '{snapshot}'; SET LOCAL jit = off", ct);
            }

            var capacity = (int)Math.Min(customers * 1.1 + 16, int.MaxValue / 2);
            var partial = await Task.WhenAll(connections.Select((connection, k) => Task.Run(() =>
            {
                var from = new NpgsqlTid((uint)(blocks * k / parts), 0);
                var to = k == parts - 1 ? new NpgsqlTid(uint.MaxValue, 0) : new NpgsqlTid((uint)(blocks * (k + 1) / parts), 0);
                // The boundary months' orders (by the paid_at index) with the last part, whose share of the blocks grows in the meantime.
                return SumAsync(connection, k == parts - 1 ? $"{MonthRowsSql} UNION ALL {BoundaryOrdersSql}" : MonthRowsSql, parameters, from, to,
                    capacity, ct);
            }, ct)));
            var sums = partial.MaxBy(p => p.Count)!;
            foreach (var other in partial)
            {
                if (ReferenceEquals(other, sums)) continue;
                foreach (var (id, s) in other)
                {
                    ref var total = ref CollectionsMarshal.GetValueRefOrAddDefault(sums, id, out var seen);
                    if (seen) total.Add(s); else total = s;
                }
            }

            var ranges = Enumerable.Range(0, bounds.Count + 1)
                .Select(k => (From: k == 0 ? (Guid?)null : bounds[k - 1], To: k == bounds.Count ? (Guid?)null : bounds[k])).ToList();
            var read = await Task.WhenAll(ranges.Select((r, k) => Task.Run(() => CustomersAsync(connections[k], sums, r.From, r.To, ct), ct)));
            var facts = new List<CustomerFacts>(read.Sum(f => f.Count) + 16);
            foreach (var part in read) facts.AddRange(part);
            // Orders of customers the read model has no profile of yet.
            foreach (var (id, s) in sums)
                if (!s.HasProfile) facts.Add(Facts(id, s, null));
            return facts;
        }
        finally
        {
            foreach (var connection in connections) await connection.DisposeAsync();
        }
    }

    private static async Task Execute(NpgsqlConnection connection, string sql, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(ct);
    }

    private static async Task<object?> Scalar(NpgsqlConnection connection, string sql, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        return await command.ExecuteScalarAsync(ct);
    }

    /// <summary>
    /// The ids that cut the customers into <paramref name="parts"/> ranges of about the same size (from a sample of about 20,000;
    /// fewer ranges when there are too few customers to cut, none without customers) and the table's estimated size (to size
    /// the sums up front).
    /// </summary>
    private static async Task<(List<Guid> Bounds, long Customers)> SplitAsync(NpgsqlConnection connection, int parts, CancellationToken ct)
    {
        var customers = Math.Max((long)(await Scalar(connection, "SELECT reltuples::bigint FROM pg_class WHERE oid = 'customers'::regclass", ct))!, 0); // -1: never analysed
        if (parts == 1) return ([], customers);
        var percent = customers > 20_000 ? 100.0 * 20_000 / customers : 100;
        await using var command = new NpgsqlCommand(FormattableString.Invariant($"""
            SELECT DISTINCT unnest(percentile_disc($1) WITHIN GROUP (ORDER BY customer_id)) FROM customers TABLESAMPLE SYSTEM ({percent})
            """), connection);
        command.Parameters.Add(new NpgsqlParameter { Value = Enumerable.Range(1, parts - 1).Select(k => (double)k / parts).ToArray() });
        var bounds = new List<Guid>();
        await using (var reader = await command.ExecuteReaderAsync(ct))
            while (await reader.ReadAsync(ct))
                if (!reader.IsDBNull(0)) bounds.Add(reader.GetGuid(0));
        bounds.Sort((x, y) => string.CompareOrdinal(x.ToString(), y.ToString())); // Postgres' order of uuids
        return (bounds, customers);
    }

    /// <summary>The rows of <paramref name="sql"/> in blocks [<paramref name="from"/>, <paramref name="to"/>) summed per customer.</summary>
    private static async Task<Dictionary<Guid, Sums>> SumAsync(NpgsqlConnection connection, string sql, IReadOnlyList<(object Value, NpgsqlDbType Type)> parameters,
        NpgsqlTid from, NpgsqlTid to, int capacity, CancellationToken ct)
    {
        var sums = new Dictionary<Guid, Sums>(capacity);
        await using var command = new NpgsqlCommand(sql, connection) { CommandTimeout = 1800 };
        foreach (var (value, type) in parameters) command.Parameters.Add(new NpgsqlParameter { Value = value, NpgsqlDbType = type });
        command.Parameters.Add(new NpgsqlParameter { Value = from, NpgsqlDbType = NpgsqlDbType.Tid });
        command.Parameters.Add(new NpgsqlParameter { Value = to, NpgsqlDbType = NpgsqlDbType.Tid });
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            ref var s = ref CollectionsMarshal.GetValueRefOrAddDefault(sums, reader.GetGuid(0), out var seen);
            var (orders, net, first) = (reader.GetInt32(1), reader.GetDecimal(2), reader.GetDateTime(3));
            var (firstNet, last) = orders == 1 ? (net, first) : (reader.GetDecimal(4), reader.GetDateTime(5));
            if (!seen || first < s.First || (first == s.First && firstNet < s.FirstNet)) (s.First, s.FirstNet) = (first, firstNet);
            if (!seen || last > s.Last) s.Last = last;
            s.Orders += orders;
            s.Net += net;
            // The windows nest (both end at as-of), so a row in the shorter window is in the longer one too.
            if (reader.GetBoolean(6)) { s.OrdersCurrent += orders; s.SpendCurrent += net; }
            if (reader.GetBoolean(7)) { s.OrdersWindow += orders; s.SpendWindow += net; }
        }
        return sums;
    }

    /// <summary>
    /// The facts of the customers in [<paramref name="from"/>, <paramref name="to"/>) (null: unbounded), marking each one's sums
    /// as having a profile (the ranges are disjoint, so no two threads touch one entry; the dictionary itself is only read).
    /// </summary>
    private static async Task<List<CustomerFacts>> CustomersAsync(NpgsqlConnection connection, Dictionary<Guid, Sums> sums, Guid? from, Guid? to,
        CancellationToken ct)
    {
        var facts = new List<CustomerFacts>();
        var tiers = new Dictionary<string, string>();
        await using var command = new NpgsqlCommand(CustomersSql, connection) { CommandTimeout = 1800 };
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)from ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)to ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            string? tier = null;
            if (!reader.IsDBNull(1))
            {
                var t = reader.GetString(1);
                if (!tiers.TryGetValue(t, out tier)) tiers[t] = tier = t;
            }
            var id = reader.GetGuid(0);
            ref var s = ref CollectionsMarshal.GetValueRefOrNullRef(sums, id);
            if (Unsafe.IsNullRef(ref s)) facts.Add(new CustomerFacts(id, 0, 0, null, null, 0, 0, 0, 0, 0, tier));
            else
            {
                s.HasProfile = true;
                facts.Add(Facts(id, s, tier));
            }
        }
        return facts;
    }

    private static CustomerFacts Facts(Guid id, in Sums s, string? tier) =>
        new(id, s.Orders, s.Net, s.First, s.Last, s.FirstNet, s.OrdersCurrent, s.SpendCurrent, s.OrdersWindow, s.SpendWindow, tier);

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
