using Npgsql;
using NpgsqlTypes;

namespace Crm.Bench.Partner;

/// <summary>
/// Customers and their ERP ids bulk-loaded with binary COPY into the service's tables (after its migrations ran):
/// seeding is not what is measured.
/// </summary>
public static class Seeding
{
    public static async Task<Guid[]> CustomersAsync(string connectionString, int count, CancellationToken ct)
    {
        var ids = new Guid[count];
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(ct);
        var now = DateTime.UtcNow;
        now = now.AddTicks(-(now.Ticks % 10));
        await using (var writer = await connection.BeginBinaryImportAsync("""
            COPY customers (id, name, gender, phone, email, tags, source_channel, marketing_consent, version, created_at, updated_at)
            FROM STDIN (FORMAT BINARY)
            """, ct))
        {
            for (var i = 0; i < count; i++)
            {
                await writer.StartRowAsync(ct);
                await writer.WriteAsync(ids[i] = Guid.CreateVersion7(), NpgsqlDbType.Uuid, ct);
                await writer.WriteAsync($"Partner Customer {i:D7}", NpgsqlDbType.Text, ct);
                await writer.WriteAsync((short)(i % 3), NpgsqlDbType.Smallint, ct);
                await writer.WriteAsync($"+86137{i:D8}", NpgsqlDbType.Text, ct);
                await writer.WriteAsync($"partner{i}@example.com", NpgsqlDbType.Text, ct);
                await writer.WriteAsync(new[] { "erp" }, NpgsqlDbType.Array | NpgsqlDbType.Text, ct);
                await writer.WriteAsync("erp", NpgsqlDbType.Text, ct);
                await writer.WriteAsync(false, NpgsqlDbType.Boolean, ct);
                await writer.WriteAsync(1L, NpgsqlDbType.Bigint, ct);
                await writer.WriteAsync(now, NpgsqlDbType.TimestampTz, ct);
                await writer.WriteAsync(now, NpgsqlDbType.TimestampTz, ct);
            }
            await writer.CompleteAsync(ct);
        }
        await using (var writer = await connection.BeginBinaryImportAsync(
            "COPY customer_external_ids (system, external_id, customer_id, created_at) FROM STDIN (FORMAT BINARY)", ct))
        {
            for (var i = 0; i < count; i++)
            {
                await writer.StartRowAsync(ct);
                await writer.WriteAsync("erp", NpgsqlDbType.Text, ct);
                await writer.WriteAsync(OrderGenerator.CustomerRef(i), NpgsqlDbType.Text, ct);
                await writer.WriteAsync(ids[i], NpgsqlDbType.Uuid, ct);
                await writer.WriteAsync(now, NpgsqlDbType.TimestampTz, ct);
            }
            await writer.CompleteAsync(ct);
        }
        await using (var analyze = new NpgsqlCommand("ANALYZE customers; ANALYZE customer_external_ids", connection))
            await analyze.ExecuteNonQueryAsync(ct);
        return ids;
    }
}
