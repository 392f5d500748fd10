using Crm.Campaigns;
using Crm.Campaigns.Analytics;
using Crm.Campaigns.Models;
using Crm.IntegrationTests.Support;
using Crm.ServiceDefaults.Copy;
using Crm.ServiceDefaults.Data;
using Dapper;
using Npgsql;
using NpgsqlTypes;

namespace Crm.IntegrationTests.Campaigns;

/// <summary>
/// The recompute writes its score rows as raw binary COPY bytes (<see cref="BinaryCopyRows"/>) instead of through Npgsql's
/// importer: the rows stored must be exactly those the importer stores, edge values of every type included.
/// </summary>
[Collection(SuiteCollection.Name)]
public class BinaryCopyTests(SuiteFixture suite)
{
    private static readonly decimal[] Decimals =
    [
        0m, -0.00m, 0.05m, -0.05m, 1m, 3000.00m, 12345.67m, -12345.67m, 0.0001m, 10000m, 100000000.0000m, 1.23456789m, 1e-28m,
        123456789012345678.9012m, 79228162514264337593543950335m, -79228162514264337593543950335m, 7.9228162514264337593543950335m,
        999999999999.99m,
    ];

    private static readonly DateTime[] Instants =
    [
        new(2026, 11, 27, 23, 59, 59, 999, DateTimeKind.Utc), new DateTime(2000, 1, 1, 0, 0, 0, DateTimeKind.Utc).AddTicks(15),
        new DateTime(1999, 12, 31, 23, 59, 59, DateTimeKind.Utc).AddTicks(9_999_995), DateTime.SpecifyKind(DateTime.MinValue, DateTimeKind.Utc), DateTime.SpecifyKind(DateTime.MaxValue, DateTimeKind.Utc),
        new DateTime(1970, 1, 1, 0, 0, 0, DateTimeKind.Utc).AddTicks(1_234_567),
    ];

    private static readonly string[] Texts = ["", "555", "hibernating", "华东 · 杭州", "emoji 🎉", new string('x', 70_000)];

    [Fact]
    public async Task Each_type_is_stored_as_Npgsqls_importer_stores_it()
    {
        await using var connection = await suite.CampaignsDb.OpenConnectionAsync();
        await connection.ExecuteAsync("""
            CREATE TEMP TABLE copy_by_importer (k int, n numeric, t timestamptz, u uuid, s text, d float8, i2 smallint, i8 bigint);
            CREATE TEMP TABLE copy_by_bytes (LIKE copy_by_importer);
            """);
        var count = new[] { Decimals.Length, Instants.Length, Texts.Length }.Max();
        var doubles = new[] { 0.0, -0.0, 1.0 / 3, double.Epsilon, double.MaxValue, double.NegativeInfinity, double.NaN };
        var random = new Random(20261128);

        var values = Enumerable.Range(0, count + 2).Select(k => k < count
            ? (K: k, N: (decimal?)Decimals[k % Decimals.Length], T: (DateTime?)Instants[k % Instants.Length], U: (Guid?)new Guid(Bytes(random)),
                S: Texts[k % Texts.Length], D: (double?)doubles[k % doubles.Length], I2: (short?)(short)(k * 4099 - 30_000), I8: (long?)(long.MinValue + k * 7919L))
            : (K: k, N: null, T: null, U: null, S: null, D: null, I2: null, I8: null)).ToList();

        await using (var importer = await connection.BeginBinaryImportAsync("COPY copy_by_importer FROM STDIN (FORMAT BINARY)"))
        {
            foreach (var v in values)
            {
                await importer.StartRowAsync();
                await importer.WriteAsync(v.K, NpgsqlDbType.Integer);
                await importer.WriteOrNullAsync(v.N, NpgsqlDbType.Numeric, default);
                await importer.WriteOrNullAsync(v.T, NpgsqlDbType.TimestampTz, default);
                await importer.WriteOrNullAsync(v.U, NpgsqlDbType.Uuid, default);
                if (v.S is null) await importer.WriteNullAsync(); else await importer.WriteAsync(v.S, NpgsqlDbType.Text);
                await importer.WriteOrNullAsync(v.D, NpgsqlDbType.Double, default);
                await importer.WriteOrNullAsync(v.I2, NpgsqlDbType.Smallint, default);
                await importer.WriteOrNullAsync(v.I8, NpgsqlDbType.Bigint, default);
            }
            await importer.CompleteAsync();
        }

        var rows = new BinaryCopyRows();
        foreach (var v in values)
        {
            rows.StartRow(8);
            rows.Int32(v.K);
            if (v.N is { } n) rows.Numeric(n); else rows.Null();
            if (v.T is { } t) rows.TimestampTz(t); else rows.Null();
            if (v.U is { } u) rows.Uuid(u); else rows.Null();
            if (v.S is { } s) rows.Text(s); else rows.Null();
            if (v.D is { } d) rows.Float8(d); else rows.Null();
            if (v.I2 is { } i2) rows.Int16(i2); else rows.Null();
            if (v.I8 is { } i8) rows.Int64(i8); else rows.Null();
        }
        rows.End();
        await using (var raw = await connection.BeginRawBinaryCopyAsync("COPY copy_by_bytes FROM STDIN (FORMAT BINARY)"))
            await raw.WriteAsync(rows.Written);

        // Compared as text (a numeric's display scale shows there) and as values.
        const string text = "SELECT k, row(n, t, u, s, d, i2, i8)::text FROM {0} ORDER BY k";
        var byImporter = (await connection.QueryAsync<(int, string)>(string.Format(text, "copy_by_importer"))).ToList();
        var byBytes = (await connection.QueryAsync<(int, string)>(string.Format(text, "copy_by_bytes"))).ToList();
        Assert.Equal(values.Count, byBytes.Count);
        Assert.Equal(byImporter, byBytes);
        Assert.Equal(0, await connection.ExecuteScalarAsync<int>("""
            SELECT count(*) FROM ((TABLE copy_by_importer EXCEPT TABLE copy_by_bytes) UNION ALL (TABLE copy_by_bytes EXCEPT TABLE copy_by_importer)) x
            """));
        // Spot checks against literals, so both sides being wrong alike would show.
        Assert.Equal(("12345.67", "-0.05", "0", "123456789012345678.9012"), await connection.QuerySingleAsync<(string, string, string, string)>($"""
            SELECT (SELECT n::text FROM copy_by_bytes WHERE k = {Array.IndexOf(Decimals, 12345.67m)}),
                   (SELECT n::text FROM copy_by_bytes WHERE k = {Array.IndexOf(Decimals, -0.05m)}),
                   (SELECT n::text FROM copy_by_bytes WHERE k = 0),
                   (SELECT n::text FROM copy_by_bytes WHERE k = {Array.IndexOf(Decimals, 123456789012345678.9012m)})
            """));
        Assert.Equal("2026-11-27 23:59:59.999+00", await connection.ExecuteScalarAsync<string>(
            "SET TIME ZONE 'UTC'; SELECT t::text FROM copy_by_bytes WHERE k = 0"));
    }

    [Fact]
    public async Task A_recomputes_score_rows_are_stored_as_the_importer_stored_them()
    {
        var options = new CampaignsOptions();
        options.ApplyDefaults();
        var engine = new Engine(options, TimeZoneInfo.FindSystemTimeZoneById(options.TimeZone));
        var asOf = new DateTime(2026, 11, 26, 4, 0, 0, DateTimeKind.Utc);
        var models = new FittedModels(new BgNbd(0.47, 8.7, 0.73, 6.6), -1, 1_800, new GammaGamma(5.5, 4.1, 827.6), -1, 1_500, asOf, asOf);
        var population = RecomputeChunkingTests.Fixture();
        var scores = engine.Score(population, asOf, models, 365);
        const long runId = 4242;

        await using var connection = await suite.CampaignsDb.OpenConnectionAsync();
        await connection.ExecuteAsync("""
            CREATE TEMP TABLE scores_by_importer (LIKE customer_scores);
            CREATE TEMP TABLE scores_by_bytes (LIKE customer_scores);
            """);
        await using (var importer = await connection.BeginBinaryImportAsync($"COPY scores_by_importer ({Columns}) FROM STDIN (FORMAT BINARY)"))
        {
            foreach (var s in scores) await WriteByImporterAsync(importer, runId, s);
            await importer.CompleteAsync();
        }
        var rows = new BinaryCopyRows();
        foreach (var s in scores) ScoreRecompute.Encode(rows, runId, s);
        rows.End();
        await using (var raw = await connection.BeginRawBinaryCopyAsync($"COPY scores_by_bytes ({Columns}) FROM STDIN (FORMAT BINARY)"))
            await raw.WriteAsync(rows.Written);

        Assert.Equal(2_000, await connection.ExecuteScalarAsync<int>("SELECT count(*) FROM scores_by_bytes"));
        Assert.Equal(0, await connection.ExecuteScalarAsync<int>("""
            SELECT count(*) FROM ((TABLE scores_by_importer EXCEPT TABLE scores_by_bytes) UNION ALL (TABLE scores_by_bytes EXCEPT TABLE scores_by_importer)) x
            """));
        // The fixture reaches the nullable columns both ways.
        Assert.Equal((200L, 1_800L), await connection.QuerySingleAsync<(long, long)>(
            "SELECT count(*) FILTER (WHERE clv IS NULL), count(*) FILTER (WHERE clv IS NOT NULL) FROM scores_by_bytes"));
    }

    private const string Columns = """
        customer_id, run_id, orders, net_spend, first_order_at, last_order_at, days_since_last_order,
        orders_12m, spend_12m, orders_24m, spend_24m, r, f, m, rfm_cell, rfm_group, p_active, expected_purchases,
        expected_order_value, clv, quadrant, decile, ladder_stage, churn, churn_basis
        """;

    /// <summary>The recompute's former writer, value by value through Npgsql's importer: the reference.</summary>
    private static async Task WriteByImporterAsync(NpgsqlBinaryImporter copy, long runId, CustomerScore s)
    {
        var c = s.Facts;
        var buyer = c.Orders > 0;
        await copy.StartRowAsync();
        await copy.WriteAsync(c.CustomerId, NpgsqlDbType.Uuid);
        await copy.WriteAsync(runId, NpgsqlDbType.Bigint);
        await copy.WriteAsync(c.Orders, NpgsqlDbType.Integer);
        await copy.WriteAsync(c.NetSpend, NpgsqlDbType.Numeric);
        await copy.WriteOrNullAsync(c.FirstOrderAt, NpgsqlDbType.TimestampTz, default);
        await copy.WriteOrNullAsync(c.LastOrderAt, NpgsqlDbType.TimestampTz, default);
        await copy.WriteOrNullAsync<int>(buyer ? s.DaysSinceLastOrder : null, NpgsqlDbType.Integer, default);
        await copy.WriteAsync(c.OrdersCurrent, NpgsqlDbType.Integer);
        await copy.WriteAsync(c.SpendCurrent, NpgsqlDbType.Numeric);
        await copy.WriteAsync(c.OrdersWindow, NpgsqlDbType.Integer);
        await copy.WriteAsync(c.SpendWindow, NpgsqlDbType.Numeric);
        await copy.WriteAsync((short)s.R, NpgsqlDbType.Smallint);
        await copy.WriteAsync((short)s.F, NpgsqlDbType.Smallint);
        await copy.WriteAsync((short)s.M, NpgsqlDbType.Smallint);
        await copy.WriteAsync(s.Cell, NpgsqlDbType.Text);
        await copy.WriteAsync(s.Group, NpgsqlDbType.Text);
        await copy.WriteOrNullAsync<double>(s.ModelUsed ? s.PActive : null, NpgsqlDbType.Double, default);
        await copy.WriteOrNullAsync<double>(s.ModelUsed ? s.ExpectedPurchases : null, NpgsqlDbType.Double, default);
        await copy.WriteOrNullAsync<decimal>(s.ModelUsed ? s.ExpectedOrderValue : null, NpgsqlDbType.Numeric, default);
        await copy.WriteOrNullAsync<decimal>(s.ModelUsed ? s.Clv : null, NpgsqlDbType.Numeric, default);
        if (ScoreRecompute.Key(s.Quadrant) is { } q) await copy.WriteAsync(q, NpgsqlDbType.Text); else await copy.WriteNullAsync();
        await copy.WriteOrNullAsync<short>(s.Decile > 0 ? (short)s.Decile : null, NpgsqlDbType.Smallint, default);
        await copy.WriteAsync(s.LadderStage, NpgsqlDbType.Text);
        if (ScoreRecompute.Key(s.Churn) is { } churn) await copy.WriteAsync(churn, NpgsqlDbType.Text); else await copy.WriteNullAsync();
        await copy.WriteAsync(s.ChurnBasis, NpgsqlDbType.Text);
    }

    private static byte[] Bytes(Random random)
    {
        var bytes = new byte[16];
        random.NextBytes(bytes);
        return bytes;
    }
}
