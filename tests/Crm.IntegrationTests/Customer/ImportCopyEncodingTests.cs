using Crm.IntegrationTests.Support;
using Crm.ServiceDefaults.Copy;
using Dapper;
using Npgsql;
using NpgsqlTypes;

namespace Crm.IntegrationTests.Customer;

/// <summary>
/// The order import's COPYs (orders, outbox, change feed, audit) encode their rows with <see cref="BinaryCopyRows"/> instead of
/// Npgsql's importer: the values the import writes (jsonb, text, uuid, numeric, timestamptz, nulls) must be stored exactly as
/// the importer stores them, also when a COPY is sent in several chunks.
/// </summary>
[Collection(SuiteCollection.Name)]
public sealed class ImportCopyEncodingTests(SuiteFixture suite)
{
    [Fact]
    public async Task Jsonb_text_uuid_and_nulls_are_stored_as_Npgsqls_importer_stores_them()
    {
        await using var connection = await suite.CustomerDb.OpenConnectionAsync();
        await connection.ExecuteAsync("""
            CREATE TEMP TABLE import_by_importer (k int, j jsonb, s text, u uuid, n numeric(14,2), t timestamptz);
            CREATE TEMP TABLE import_by_bytes (LIKE import_by_importer);
            """);
        string[] jsons =
        [
            """[{"sku":"RING-18K-001","productName":"18K ring","quantity":1,"unitPrice":1999.00}]""",
            """{"orderId":"0196f1a2-0000-7000-8000-000000000009","lines":[],"storeId":null,"paidAt":"2026-11-28T04:00:00+00:00"}""",
            """{"name":"华东 · 杭州 🎉","nested":{"a":[1,2.5,-3e2,true,false,null]}}""",
            "{\"big\":\"" + new string('x', 70_000) + "\"}", // more than one flush of the encoder on its own
        ];
        var random = new Random(20261128);
        var values = Enumerable.Range(0, 400).Select(k => k % 7 == 6
            ? (K: k, J: (string?)null, S: (string?)null, U: (Guid?)null, N: 0.01m * k, T: new DateTime(2026, 11, 28, 4, 0, 0, DateTimeKind.Utc).AddTicks(k * 13))
            : (K: k, J: jsons[k % jsons.Length], S: k % 2 == 0 ? "erp" : "华东", U: Guid.CreateVersion7(), N: 1999.00m + k, T: DateTime.UtcNow.AddTicks(-random.Next())))
            .ToList();

        await using (var importer = await connection.BeginBinaryImportAsync("COPY import_by_importer FROM STDIN (FORMAT BINARY)"))
        {
            foreach (var v in values)
            {
                await importer.StartRowAsync();
                await importer.WriteAsync(v.K, NpgsqlDbType.Integer);
                if (v.J is null) await importer.WriteNullAsync(); else await importer.WriteAsync(v.J, NpgsqlDbType.Jsonb);
                if (v.S is null) await importer.WriteNullAsync(); else await importer.WriteAsync(v.S, NpgsqlDbType.Text);
                if (v.U is null) await importer.WriteNullAsync(); else await importer.WriteAsync(v.U.Value, NpgsqlDbType.Uuid);
                await importer.WriteAsync(v.N, NpgsqlDbType.Numeric);
                await importer.WriteAsync(v.T, NpgsqlDbType.TimestampTz);
            }
            await importer.CompleteAsync();
        }
        await BinaryCopyRows.CopyAsync(connection, "COPY import_by_bytes FROM STDIN (FORMAT BINARY)", values.Count, (rows, i) =>
        {
            var v = values[i];
            rows.StartRow(6);
            rows.Int32(v.K);
            if (v.J is null) rows.Null(); else rows.Jsonb(v.J);
            rows.TextOrNull(v.S);
            rows.UuidOrNull(v.U);
            rows.Numeric(v.N);
            rows.TimestampTz(v.T);
        }, CancellationToken.None);

        Assert.Equal(400, await connection.ExecuteScalarAsync<int>("SELECT count(*) FROM import_by_bytes"));
        Assert.Equal(0, await connection.ExecuteScalarAsync<int>("""
            SELECT count(*) FROM ((TABLE import_by_importer EXCEPT TABLE import_by_bytes) UNION ALL (TABLE import_by_bytes EXCEPT TABLE import_by_importer)) x
            """));
        // Spot checks against literals, so both sides being wrong alike would show.
        Assert.Equal(("RING-18K-001", "华东 · 杭州 🎉", 70_000, 57), await connection.QuerySingleAsync<(string, string, int, int)>("""
            SELECT (SELECT j->0->>'sku' FROM import_by_bytes WHERE k = 0),
                   (SELECT j->>'name' FROM import_by_bytes WHERE k = 2),
                   (SELECT length(j->>'big') FROM import_by_bytes WHERE k = 3),
                   (SELECT count(*)::int FROM import_by_bytes WHERE j IS NULL AND s IS NULL AND u IS NULL)
            """));
    }

    [Fact]
    public async Task A_constraint_violation_is_the_PostgresException_the_importer_throws()
    {
        await using var connection = await suite.CustomerDb.OpenConnectionAsync();
        await connection.ExecuteAsync("CREATE TEMP TABLE import_unique (k int PRIMARY KEY)");
        var error = await Assert.ThrowsAsync<PostgresException>(() => BinaryCopyRows.CopyAsync(connection,
            "COPY import_unique FROM STDIN (FORMAT BINARY)", 3, (rows, i) =>
            {
                rows.StartRow(1);
                rows.Int32(i == 2 ? 0 : i);
            }, CancellationToken.None));
        Assert.Equal(PostgresErrorCodes.UniqueViolation, error.SqlState);
        Assert.Equal(1, await connection.ExecuteScalarAsync<int>("SELECT 1")); // the connection is usable afterwards
    }
}
