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
    /// <summary>One row per roll-up month or boundary-month order: customer, orders, net, first (paid_at, net), last paid_at, in the two windows.</summary>
    public const string RowsSql = """
        SELECT customer_id, orders, net, first_paid_at, first_net, last_paid_at, month > $5, month > $6
        FROM sales_customer_months
        WHERE month < $4 AND month <> $5 AND month <> $6
        UNION ALL
        SELECT customer_id, 1, amount_paid - amount_refunded, paid_at, amount_paid - amount_refunded, paid_at, paid_at > $2, paid_at > $3
        FROM orders
        WHERE ((paid_at >= $7 AND paid_at < $8) OR (paid_at >= $9 AND paid_at < $10) OR (paid_at >= $11 AND paid_at < $12))
          AND paid_at <= $1 AND amount_paid > amount_refunded
        """;

    private const string CustomersSql = "SELECT customer_id, tier FROM customers";

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
    /// </summary>
    public static async Task<List<CustomerFacts>> ReadAsync(NpgsqlConnection connection, NpgsqlTransaction? tx,
        IEnumerable<(object Value, NpgsqlDbType Type)> parameters, CancellationToken ct)
    {
        var sums = new Dictionary<Guid, Sums>();
        await using (var command = new NpgsqlCommand(RowsSql, connection, tx) { CommandTimeout = 1800 })
        {
            foreach (var (value, type) in parameters) command.Parameters.Add(new NpgsqlParameter { Value = value, NpgsqlDbType = type });
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

        var facts = new List<CustomerFacts>(sums.Count + sums.Count / 8);
        var tiers = new Dictionary<string, string>();
        await using (var command = new NpgsqlCommand(CustomersSql, connection, tx) { CommandTimeout = 1800 })
        await using (var reader = await command.ExecuteReaderAsync(ct))
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
        // Orders of customers the read model has no profile of yet.
        foreach (var (id, s) in sums) facts.Add(Facts(id, s, null));
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
