using Npgsql;
using NpgsqlTypes;

namespace Crm.Bench;

/// <summary>
/// Bulk-loads customers with binary COPY straight into the service's table (after its migrations ran), then
/// ANALYZEs it. Seeding is not what is measured; rows look like ones the service writes (E.164 phones,
/// lower-case emails, microsecond timestamps).
/// </summary>
public static class Seeder
{
    private static readonly string[] Regions = ["广东", "上海", "北京", "浙江", "江苏", "四川"];
    private static readonly string[] Cities = ["深圳", "上海", "北京", "杭州", "南京", "成都"];

    public static async Task<Guid[]> SeedCustomersAsync(string connectionString, int count, CancellationToken ct)
    {
        var ids = new Guid[count];
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(ct);
        var now = DateTime.UtcNow;
        now = now.AddTicks(-(now.Ticks % 10)); // Postgres keeps microseconds
        await using (var writer = await connection.BeginBinaryImportAsync("""
            COPY customers (id, name, gender, phone, email, region, city, address, preferences, tags, source_channel,
                            marketing_consent, version, created_at, updated_at) FROM STDIN (FORMAT BINARY)
            """, ct))
        {
            for (var i = 0; i < count; i++)
            {
                var id = ids[i] = Guid.CreateVersion7();
                var r = i % Regions.Length;
                await writer.StartRowAsync(ct);
                await writer.WriteAsync(id, NpgsqlDbType.Uuid, ct);
                await writer.WriteAsync($"Bench Customer {i:D6}", NpgsqlDbType.Text, ct);
                await writer.WriteAsync((short)(i % 3), NpgsqlDbType.Smallint, ct);
                await writer.WriteAsync($"+86139{i:D8}", NpgsqlDbType.Text, ct);
                await writer.WriteAsync($"bench{i}@example.com", NpgsqlDbType.Text, ct);
                await writer.WriteAsync(Regions[r], NpgsqlDbType.Text, ct);
                await writer.WriteAsync(Cities[r], NpgsqlDbType.Text, ct);
                await writer.WriteAsync($"{i % 500} Bench Road", NpgsqlDbType.Text, ct);
                await writer.WriteAsync(new[] { "rings", "necklaces" }, NpgsqlDbType.Array | NpgsqlDbType.Text, ct);
                await writer.WriteAsync(i % 10 == 0 ? new[] { "vip", "bench" } : new[] { "bench" }, NpgsqlDbType.Array | NpgsqlDbType.Text, ct);
                await writer.WriteAsync("store", NpgsqlDbType.Text, ct);
                await writer.WriteAsync(i % 2 == 0, NpgsqlDbType.Boolean, ct);
                await writer.WriteAsync(1L, NpgsqlDbType.Bigint, ct);
                await writer.WriteAsync(now, NpgsqlDbType.TimestampTz, ct);
                await writer.WriteAsync(now, NpgsqlDbType.TimestampTz, ct);
            }
            await writer.CompleteAsync(ct);
        }
        await using (var analyze = new NpgsqlCommand("ANALYZE customers", connection))
            await analyze.ExecuteNonQueryAsync(ct);
        return ids;
    }
}
