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
    /// One row per roll-up month or boundary-month order of the customers in [$13, $14) (null: unbounded): customer, orders,
    /// net, first (paid_at, net), last paid_at, in the two windows.
    /// </summary>
    public const string RowsSql = """
        SELECT customer_id, orders, net, first_paid_at, first_net, last_paid_at, month > $5, month > $6
        FROM sales_customer_months
        WHERE month < $4 AND month <> $5 AND month <> $6
          AND ($13::uuid IS NULL OR customer_id >= $13) AND ($14::uuid IS NULL OR customer_id < $14)
        UNION ALL
        SELECT customer_id, 1, amount_paid - amount_refunded, paid_at, amount_paid - amount_refunded, paid_at, paid_at > $2, paid_at > $3
        FROM orders
        WHERE ((paid_at >= $7 AND paid_at < $8) OR (paid_at >= $9 AND paid_at < $10) OR (paid_at >= $11 AND paid_at < $12))
          AND paid_at <= $1 AND amount_paid > amount_refunded
          AND ($13::uuid IS NULL OR customer_id >= $13) AND ($14::uuid IS NULL OR customer_id < $14)
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
    }

    /// <summary>
    /// Every customer known to the read model (a customers row or a counted order) with the facts of <see cref="RowsSql"/> summed,
    /// as <see cref="ScoreRecompute"/>'s from-orders query gives them. <paramref name="parameters"/> are $1 to $12.
    /// The customers are read in <paramref name="parts"/> ranges of their ids at once, each on its own connection and thread
    /// (Postgres sending one range's rows while this process sums another's: both cores busy); each range's facts are complete
    /// in themselves, so the parts are simply put one after the other.
    /// </summary>
    public static async Task<List<CustomerFacts>> ReadAsync(NpgsqlDataSource dataSource, IReadOnlyList<(object Value, NpgsqlDbType Type)> parameters,
        int parts, CancellationToken ct)
    {
        var (bounds, customers) = await SplitAsync(dataSource, Math.Max(parts, 1), ct);
        var ranges = Enumerable.Range(0, bounds.Count + 1).Select(k => (From: k == 0 ? (Guid?)null : bounds[k - 1], To: k == bounds.Count ? (Guid?)null : bounds[k]));
        var capacity = (int)Math.Min(customers / (bounds.Count + 1) * 1.1 + 16, int.MaxValue / 2);
        var read = await Task.WhenAll(ranges.Select(r => Task.Run(() => ReadRangeAsync(dataSource, parameters, r.From, r.To, capacity, ct), ct)));
        var facts = new List<CustomerFacts>(read.Sum(f => f.Count));
        foreach (var part in read) facts.AddRange(part);
        return facts;
    }

    /// <summary>
    /// The ids that cut the customers into <paramref name="parts"/> ranges of about the same size (from a sample of about 20,000;
    /// fewer ranges when there are too few customers to cut, none without customers) and the table's estimated size (to size
    /// the sums up front).
    /// </summary>
    private static async Task<(List<Guid> Bounds, long Customers)> SplitAsync(NpgsqlDataSource dataSource, int parts, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var estimate = new NpgsqlCommand("SELECT reltuples::bigint FROM pg_class WHERE oid = 'customers'::regclass", connection);
        var customers = Math.Max((long)(await estimate.ExecuteScalarAsync(ct))!, 0); // -1: never analysed
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

    private static async Task<List<CustomerFacts>> ReadRangeAsync(NpgsqlDataSource dataSource, IReadOnlyList<(object Value, NpgsqlDbType Type)> parameters,
        Guid? from, Guid? to, int capacity, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        // No JIT: compiling the query's expressions (its cost being high) takes longer than it saves on a scan that only filters.
        await using (var set = new NpgsqlCommand("SET LOCAL jit = off", connection, tx)) await set.ExecuteNonQueryAsync(ct);
        var sums = new Dictionary<Guid, Sums>(capacity);
        await using (var command = new NpgsqlCommand(RowsSql, connection, tx) { CommandTimeout = 1800 })
        {
            foreach (var (value, type) in parameters) command.Parameters.Add(new NpgsqlParameter { Value = value, NpgsqlDbType = type });
            command.Parameters.Add(new NpgsqlParameter { Value = (object?)from ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
            command.Parameters.Add(new NpgsqlParameter { Value = (object?)to ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
            await using var reader = await command.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
            {
                ref var s = ref CollectionsMarshal.GetValueRefOrAddDefault(sums, reader.GetGuid(0), out var seen);
                var (orders, net, first, firstNet, last) = (reader.GetInt32(1), reader.GetDecimal(2), reader.GetDateTime(3), reader.GetDecimal(4),
                    reader.GetDateTime(5));
                if (!seen || first < s.First || (first == s.First && firstNet < s.FirstNet)) (s.First, s.FirstNet) = (first, firstNet);
                if (!seen || last > s.Last) s.Last = last;
                s.Orders += orders;
                s.Net += net;
                // The windows nest (both end at as-of), so a row in the shorter window is in the longer one too.
                if (reader.GetBoolean(6)) { s.OrdersCurrent += orders; s.SpendCurrent += net; }
                if (reader.GetBoolean(7)) { s.OrdersWindow += orders; s.SpendWindow += net; }
            }
        }

        var facts = new List<CustomerFacts>(capacity);
        var tiers = new Dictionary<string, string>();
        await using (var command = new NpgsqlCommand(CustomersSql, connection, tx) { CommandTimeout = 1800 })
        {
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
                facts.Add(sums.Remove(id, out var s) ? Facts(id, s, tier) : new CustomerFacts(id, 0, 0, null, null, 0, 0, 0, 0, 0, tier));
            }
        }
        // Orders of customers the read model has no profile of yet.
        foreach (var (id, s) in sums) facts.Add(Facts(id, s, null));
        await tx.CommitAsync(ct);
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
