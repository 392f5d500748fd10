using System.Diagnostics;
using Npgsql;
using NpgsqlTypes;

namespace Crm.Bench.Partner;

public sealed record CopyResult(long Rows, double Seconds, double RowsPerSecond, CpuUsage Cpu);

/// <summary>
/// The ceiling: binary COPY of the generated orders (the same rows the import sends, customers resolved, lines as
/// jsonb) into copy_orders, a table shaped like the service's orders (LIKE orders INCLUDING ALL: columns, defaults,
/// checks, the primary key, the unique external id and the customer index; plus the same foreign key to customers),
/// in one transaction. Generating the rows is inside the timing, as it is for the import. The table is dropped after.
/// </summary>
public static class CopyCeiling
{
    public static async Task<CopyResult> RunAsync(string connectionString, OrderGenerator generator, Guid[] customerIds, CpuMeter cpu, CancellationToken ct)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(ct);
        await using (var create = new NpgsqlCommand("""
            DROP TABLE IF EXISTS copy_orders;
            CREATE TABLE copy_orders (LIKE orders INCLUDING ALL);
            ALTER TABLE copy_orders ADD FOREIGN KEY (customer_id) REFERENCES customers (id);
            CHECKPOINT;
            """, connection))
            await create.ExecuteNonQueryAsync(ct);

        var before = cpu.Snapshot();
        var watch = Stopwatch.StartNew();
        long rows = 0;
        await using (var writer = await connection.BeginBinaryImportAsync("""
            COPY copy_orders (id, customer_id, external_order_id, store_id, channel, payment_method, lines, amount_paid, paid_at, recorded_at)
            FROM STDIN (FORMAT BINARY)
            """, ct))
        {
            writer.Timeout = TimeSpan.FromMinutes(30); // not the default 30 s: the final flush of a million rows can take longer on a busy machine
            foreach (var o in generator.All())
            {
                var now = DateTime.UtcNow;
                await writer.StartRowAsync(ct);
                await writer.WriteAsync(Guid.CreateVersion7(), NpgsqlDbType.Uuid, ct);
                await writer.WriteAsync(customerIds[o.Customer], NpgsqlDbType.Uuid, ct);
                await writer.WriteAsync(o.ExternalOrderId, NpgsqlDbType.Text, ct);
                await writer.WriteAsync(o.StoreId, NpgsqlDbType.Text, ct);
                await writer.WriteAsync(o.Channel, NpgsqlDbType.Text, ct);
                await writer.WriteAsync(o.PaymentMethod, NpgsqlDbType.Text, ct);
                await writer.WriteAsync(OrderGenerator.LinesJson(o), NpgsqlDbType.Jsonb, ct);
                await writer.WriteAsync(o.AmountPaid, NpgsqlDbType.Numeric, ct);
                await writer.WriteAsync(o.PaidAt, NpgsqlDbType.TimestampTz, ct);
                await writer.WriteAsync(now.AddTicks(-(now.Ticks % 10)), NpgsqlDbType.TimestampTz, ct);
                rows++;
            }
            await writer.CompleteAsync(ct);
        }
        var seconds = watch.Elapsed.TotalSeconds;
        var usage = cpu.Snapshot() - before;
        await using (var drop = new NpgsqlCommand("DROP TABLE copy_orders", connection))
            await drop.ExecuteNonQueryAsync(ct);
        return new CopyResult(rows, seconds, rows / seconds, usage);
    }
}
