using System.Diagnostics;
using Npgsql;
using NpgsqlTypes;

namespace Crm.Bench.Campaigns;

public sealed record Generated(int Customers, int Buyers, long Orders, long Lines, long Refunded, decimal NetRevenue, DateTime End, double RateScale,
    double LoadSeconds, double IndexSeconds);

/// <summary>
/// Synthetic customers and orders with a fixed seed, loaded with binary COPY into the campaign service's read-model tables
/// (customers, orders, order_lines) as its consumers would have written them. Each buyer follows the BG/NBD story: a first
/// order at a uniform time over three years, then orders at Poisson rate λ ~ Gamma(0.8, θ) a day, dropping out after each
/// with probability p ~ Beta(0.7, 5); order values follow Gamma-Gamma (z ~ Gamma(6, ν), ν ~ Gamma(4, rate 750): mean
/// 1,500 yuan, skewed). θ is calibrated on a sample so the buyers make about the requested number of orders; generation
/// stops at exactly that number (later customers remain prospects, about 10% never buy at all). 3% of orders are
/// refunded, two thirds of those in full. 1-3 lines per order over 2,000 SKUs with Zipf popularity.
/// </summary>
public static class Generator
{
    private const int Days = 1096;
    private const int Skus = 2_000;
    private static readonly string[] Regions = ["华东", "华南", "华北", "西南", "华中", "东北", "西北", "港澳台"];
    private static readonly string[] Cities = ["上海", "深圳", "北京", "成都", "武汉", "沈阳", "西安", "香港"];
    private static readonly string[] Channels = ["store", "store", "store", "store", "store", "store", "store", "online", "online", "wechat"];
    private static readonly string[] SkuCodes = Enumerable.Range(0, Skus + 1).Select(k => $"SKU-{k:0000}").ToArray();
    private static readonly string[] SkuNames = Enumerable.Range(0, Skus + 1).Select(k => $"Product {k:0000}").ToArray();
    private static readonly string[] Stores = Enumerable.Range(0, 201).Select(k => $"S{k}").ToArray();
    private static readonly (string Tier, decimal Above)[] Tiers = [("S6", 980_000), ("S5", 580_000), ("S4", 180_000), ("S3", 80_000), ("S2", 8_000)];

    public static async Task<Generated> LoadAsync(string connectionString, int customers, int orders, int seed, DateTime end, CancellationToken ct)
    {
        var watch = Stopwatch.StartNew();
        var scale = Calibrate(orders / (customers * 0.9) * 1.03, seed);
        BenchHost.Log($"  calibrated θ = {scale:0.000000} in {watch.Elapsed.TotalSeconds:0.0} s");
        var saved = await DropConstraintsAndIndexesAsync(connectionString, ct);
        BenchHost.Log($"  keys and indexes dropped at {watch.Elapsed.TotalSeconds:0.0} s");

        await using var cConn = await Open(connectionString, ct);
        await using var oConn = await Open(connectionString, ct);
        await using var lConn = await Open(connectionString, ct);
        // TRUNCATE in the COPY's transaction: with wal_level minimal Postgres then skips the WAL for the load.
        await using var cTx = await cConn.BeginTransactionAsync(ct);
        await using var oTx = await oConn.BeginTransactionAsync(ct);
        await using var lTx = await lConn.BeginTransactionAsync(ct);
        await Exec(cConn, "TRUNCATE customers", ct);
        await Exec(oConn, "TRUNCATE orders", ct);
        await Exec(lConn, "TRUNCATE order_lines", ct);
        var cCopy = await cConn.BeginBinaryImportAsync("""
            COPY customers (customer_id, profile_version, registered_at, birthday_month, region, city, tags, marketing_consent, tier, tier_seq, tier_at,
                points_balance, points_seq, points_at) FROM STDIN (FORMAT BINARY)
            """, ct);
        var oCopy = await oConn.BeginBinaryImportAsync("""
            COPY orders (order_id, customer_id, external_order_id, store_id, channel, amount_paid, amount_refunded, paid_at) FROM STDIN (FORMAT BINARY)
            """, ct);
        var lCopy = await lConn.BeginBinaryImportAsync("""
            COPY order_lines (order_id, line_no, sku, product_name, quantity, unit_price) FROM STDIN (FORMAT BINARY)
            """, ct);

        var random = new Random(seed);
        var zipf = ZipfTable(Skus, 1.1);
        var start = end.AddDays(-Days);
        long written = 0, lines = 0, refunded = 0;
        var buyers = 0;
        decimal net = 0;
        var times = new List<double>();
        for (var i = 0; i < customers; i++)
        {
            if ((i & 0xFFFF) == 0) ct.ThrowIfCancellationRequested();
            var id = NewGuid(random);
            times.Clear();
            var buys = random.NextDouble() >= 0.10 && written < orders;
            if (buys) Process(random, scale, times);
            var nu = Gamma(random, 4) / 750.0;
            decimal spend = 0;
            var bought = 0;
            foreach (var t in times)
            {
                if (written == orders) break;
                var paidAt = start.AddDays(t);
                var amount = Math.Max(10m, decimal.Round((decimal)(Gamma(random, 6) / nu), 2));
                var refund = 0m;
                if (random.NextDouble() < 0.03)
                {
                    refund = random.NextDouble() < 2.0 / 3 ? amount : decimal.Round(amount * (decimal)(0.1 + 0.8 * random.NextDouble()), 2);
                    refunded++;
                }
                var orderId = NewGuid(random);
                oCopy.StartRow();
                oCopy.Write(orderId, NpgsqlDbType.Uuid);
                oCopy.Write(id, NpgsqlDbType.Uuid);
                oCopy.Write("GEN-" + written.ToString(System.Globalization.CultureInfo.InvariantCulture), NpgsqlDbType.Text);
                oCopy.Write(Stores[1 + (int)(200 * random.NextDouble() * random.NextDouble())], NpgsqlDbType.Text);
                oCopy.Write(Channels[random.Next(Channels.Length)], NpgsqlDbType.Text);
                oCopy.Write(amount, NpgsqlDbType.Numeric);
                oCopy.Write(refund, NpgsqlDbType.Numeric);
                oCopy.Write(paidAt, NpgsqlDbType.TimestampTz);
                var count = random.NextDouble() switch { < 0.75 => 1, < 0.95 => 2, _ => 3 };
                var left = amount;
                for (var n = 1; n <= count; n++)
                {
                    var price = n == count ? left : decimal.Round(amount / count, 2);
                    left -= price;
                    var sku = Sample(zipf, random);
                    lCopy.StartRow();
                    lCopy.Write(orderId, NpgsqlDbType.Uuid);
                    lCopy.Write(n, NpgsqlDbType.Integer);
                    lCopy.Write(SkuCodes[sku], NpgsqlDbType.Text);
                    lCopy.Write(SkuNames[sku], NpgsqlDbType.Text);
                    lCopy.Write(1, NpgsqlDbType.Integer);
                    lCopy.Write(price, NpgsqlDbType.Numeric);
                    lines++;
                }
                written++;
                if (written % 1_000_000 == 0) BenchHost.Log($"  {written:N0} orders at {watch.Elapsed.TotalSeconds:0.0} s");
                bought++;
                spend += amount - refund;
            }
            if (bought > 0) buyers++;
            net += spend;

            var registered = start.AddDays((times.Count > 0 ? times[0] : random.NextDouble() * Days) - random.NextDouble() * 30);
            var tier = Tiers.FirstOrDefault(t => spend > t.Above).Tier ?? "S1";
            cCopy.StartRow();
            cCopy.Write(id, NpgsqlDbType.Uuid);
            cCopy.Write(1L, NpgsqlDbType.Bigint);
            cCopy.Write(registered, NpgsqlDbType.TimestampTz);
            cCopy.Write((short)(1 + random.Next(12)), NpgsqlDbType.Smallint);
            var place = random.Next(Regions.Length);
            cCopy.Write(Regions[place], NpgsqlDbType.Text);
            cCopy.Write(Cities[place], NpgsqlDbType.Text);
            cCopy.Write(Array.Empty<string>(), NpgsqlDbType.Array | NpgsqlDbType.Text);
            cCopy.Write(random.NextDouble() < 0.7, NpgsqlDbType.Boolean);
            cCopy.Write(tier, NpgsqlDbType.Text);
            cCopy.Write(1L, NpgsqlDbType.Bigint);
            cCopy.Write(end, NpgsqlDbType.TimestampTz);
            cCopy.Write((long)(spend * 0.6m), NpgsqlDbType.Bigint);
            cCopy.Write(1L, NpgsqlDbType.Bigint);
            cCopy.Write(end, NpgsqlDbType.TimestampTz);
        }
        await cCopy.CompleteAsync(ct);
        await oCopy.CompleteAsync(ct);
        await lCopy.CompleteAsync(ct);
        await cCopy.DisposeAsync();
        await oCopy.DisposeAsync();
        await lCopy.DisposeAsync();
        await cTx.CommitAsync(ct);
        await oTx.CommitAsync(ct);
        await lTx.CommitAsync(ct);
        var loadSeconds = watch.Elapsed.TotalSeconds;
        BenchHost.Log($"  loaded at {loadSeconds:0.0} s; restoring keys, indexes and statistics");

        watch.Restart();
        await RestoreAsync(connectionString, saved, ct);
        return new Generated(customers, buyers, written, lines, refunded, net, end, scale, loadSeconds, watch.Elapsed.TotalSeconds);
    }

    /// <summary>One buyer's order times in days since the start: first at a uniform time, then Poisson(λ) until drop-out or the end.</summary>
    private static void Process(Random random, double scale, List<double> times)
    {
        var lambda = Gamma(random, 0.8) * scale;
        var p = Beta(random, 0.7, 5);
        var t = random.NextDouble() * Days;
        times.Add(t);
        while (true)
        {
            if (random.NextDouble() < p) return;
            t += -Math.Log(1 - random.NextDouble()) / lambda;
            if (t >= Days) return;
            times.Add(t);
        }
    }

    /// <summary>θ (the scale of λ) for which a buyer makes <paramref name="meanOrders"/> orders on average, by bisection on 20,000 simulated buyers.</summary>
    private static double Calibrate(double meanOrders, int seed)
    {
        double low = 1e-5, high = 10;
        var times = new List<double>();
        for (var step = 0; step < 30; step++)
        {
            var mid = Math.Sqrt(low * high);
            var random = new Random(seed + 1);
            long total = 0;
            for (var i = 0; i < 20_000; i++)
            {
                times.Clear();
                Process(random, mid, times);
                total += times.Count;
            }
            if (total / 20_000.0 < meanOrders) low = mid; else high = mid;
        }
        return Math.Sqrt(low * high);
    }

    /// <summary>Gamma(shape, 1) by Marsaglia and Tsang (2000).</summary>
    private static double Gamma(Random random, double shape)
    {
        if (shape < 1) return Gamma(random, shape + 1) * Math.Pow(random.NextDouble(), 1 / shape);
        var d = shape - 1.0 / 3;
        var c = 1 / Math.Sqrt(9 * d);
        while (true)
        {
            double x, v;
            do
            {
                x = Normal(random);
                v = 1 + c * x;
            } while (v <= 0);
            v = v * v * v;
            var u = random.NextDouble();
            if (u < 1 - 0.0331 * x * x * x * x || Math.Log(u) < 0.5 * x * x + d * (1 - v + Math.Log(v))) return d * v;
        }
    }

    private static double Beta(Random random, double a, double b)
    {
        var x = Gamma(random, a);
        return x / (x + Gamma(random, b));
    }

    private static double Normal(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());

    private static double[] ZipfTable(int n, double s)
    {
        var cumulative = new double[n];
        double sum = 0;
        for (var k = 0; k < n; k++) cumulative[k] = sum += 1 / Math.Pow(k + 1, s);
        for (var k = 0; k < n; k++) cumulative[k] /= sum;
        return cumulative;
    }

    private static int Sample(double[] cumulative, Random random)
    {
        var i = Array.BinarySearch(cumulative, random.NextDouble());
        return (i < 0 ? ~i : i) + 1;
    }

    private static Guid NewGuid(Random random)
    {
        Span<byte> bytes = stackalloc byte[16];
        random.NextBytes(bytes);
        bytes[7] = (byte)(bytes[7] & 0x0F | 0x40); // version 4 in the little-endian layout Guid(bytes) uses
        bytes[8] = (byte)(bytes[8] & 0x3F | 0x80);
        return new Guid(bytes);
    }

    private sealed record Saved(List<string> Constraints, List<string> Indexes);

    /// <summary>Drops the keys, foreign keys and indexes of the three tables (kept as their exact definitions) so the load is a plain append.</summary>
    private static async Task<Saved> DropConstraintsAndIndexesAsync(string connectionString, CancellationToken ct)
    {
        await using var connection = await Open(connectionString, ct);
        var constraints = new List<(string Table, string Name, string Def, char Type)>();
        await using (var command = new NpgsqlCommand("""
            SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), contype FROM pg_constraint
            WHERE conrelid IN ('customers'::regclass, 'orders'::regclass, 'order_lines'::regclass) AND contype IN ('p', 'f')
            ORDER BY contype DESC
            """, connection))
        await using (var reader = await command.ExecuteReaderAsync(ct))
            while (await reader.ReadAsync(ct)) constraints.Add((reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetChar(3)));
        var indexes = new List<(string Name, string Def)>();
        await using (var command = new NpgsqlCommand("""
            SELECT indexname, indexdef FROM pg_indexes
            WHERE schemaname = current_schema() AND tablename IN ('customers', 'orders', 'order_lines')
              AND indexname NOT IN (SELECT conname FROM pg_constraint)
            """, connection))
        await using (var reader = await command.ExecuteReaderAsync(ct))
            while (await reader.ReadAsync(ct)) indexes.Add((reader.GetString(0), reader.GetString(1)));
        // Foreign keys ('f') first, then primary keys.
        foreach (var c in constraints.OrderBy(c => c.Type == 'f' ? 0 : 1))
            await Exec(connection, $"ALTER TABLE {c.Table} DROP CONSTRAINT {c.Name}", ct);
        foreach (var i in indexes) await Exec(connection, $"DROP INDEX {i.Name}", ct);
        return new Saved(
            constraints.OrderBy(c => c.Type == 'p' ? 0 : 1).Select(c => $"ALTER TABLE {c.Table} ADD CONSTRAINT {c.Name} {c.Def}").ToList(),
            indexes.Select(i => i.Def).ToList());
    }

    /// <summary>Primary keys, then indexes, then foreign keys (validated against the keys), then VACUUM ANALYZE.</summary>
    private static async Task RestoreAsync(string connectionString, Saved saved, CancellationToken ct)
    {
        await using var connection = await Open(connectionString, ct);
        await Exec(connection, "SET maintenance_work_mem = '512MB'", ct);
        foreach (var sql in saved.Constraints.Where(c => c.Contains("PRIMARY KEY", StringComparison.Ordinal))) await Exec(connection, sql, ct);
        foreach (var sql in saved.Indexes) await Exec(connection, sql, ct);
        foreach (var sql in saved.Constraints.Where(c => !c.Contains("PRIMARY KEY", StringComparison.Ordinal))) await Exec(connection, sql, ct);
        await Exec(connection, "VACUUM (ANALYZE) customers, orders, order_lines", ct);
    }

    private static async Task<NpgsqlConnection> Open(string connectionString, CancellationToken ct)
    {
        var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(ct);
        return connection;
    }

    private static async Task Exec(NpgsqlConnection connection, string sql, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(sql, connection) { CommandTimeout = 3600 };
        await command.ExecuteNonQueryAsync(ct);
    }
}
