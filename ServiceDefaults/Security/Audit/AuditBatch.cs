using Google.Protobuf;
using Grpc.Core;
using Crm.ServiceDefaults.Copy;
using Crm.ServiceDefaults.Data;
using Npgsql;
using NpgsqlTypes;

namespace Crm.ServiceDefaults.Security.Audit;

/// <summary>
/// The audit rows of many items of one streaming call written at once (the bulk import writes a batch of items
/// in one transaction): each row is what <see cref="Audit.Begin"/> + <see cref="Audit.RecordAsync"/> would write for that item.
/// </summary>
public static class AuditBatch
{
    public static async Task RecordAsync(NpgsqlTransaction tx, ServerCallContext context, IReadOnlyList<(IMessage Request, string TargetId)> writes,
        CancellationToken ct)
    {
        if (writes.Count == 0) return;
        var first = AuditInterceptor.Note(context, writes[0].Request);
        var targets = new string?[writes.Count];
        var keys = new string?[writes.Count];
        for (var i = 0; i < writes.Count; i++)
        {
            var call = i == 0 ? first : AuditInterceptor.Note(context, writes[i].Request);
            targets[i] = writes[i].TargetId;
            keys[i] = call.IdempotencyKey;
        }
        await using var command = new NpgsqlCommand("""
            INSERT INTO audit_events (subject, role, client_id, rpc, target_id, idempotency_key, outcome)
            SELECT $1, $2, $3, $4, w.target_id, w.idempotency_key, 'OK'
            FROM unnest($5::text[], $6::text[]) WITH ORDINALITY AS w(target_id, idempotency_key, n) ORDER BY w.n
            """, tx.Connection, tx);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = first.Caller.Subject });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = first.Caller.Role });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)first.Caller.ClientId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = first.Rpc });
        command.Parameters.Add(new NpgsqlParameter { Value = targets, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = keys, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        await command.ExecuteNonQueryAsync(ct);
    }

    /// <summary>The rows <see cref="RecordAsync"/> writes, with binary COPY instead of an INSERT (the bulk import's path).</summary>
    public static async Task CopyAsync(NpgsqlTransaction tx, ServerCallContext context, IReadOnlyList<(IMessage Request, string TargetId)> writes,
        CancellationToken ct)
    {
        if (writes.Count == 0) return;
        var calls = new AuditCall[writes.Count];
        for (var i = 0; i < writes.Count; i++) calls[i] = AuditInterceptor.Note(context, writes[i].Request);
        await BinaryCopyRows.CopyAsync(tx.Connection!,
            "COPY audit_events (subject, role, client_id, rpc, target_id, idempotency_key, outcome) FROM STDIN (FORMAT BINARY)",
            writes.Count, (rows, i) =>
            {
                var call = calls[i];
                rows.StartRow(7);
                rows.TextOrNull(call.Caller.Subject);
                rows.TextOrNull(call.Caller.Role);
                rows.TextOrNull(call.Caller.ClientId);
                rows.TextOrNull(call.Rpc);
                rows.TextOrNull(writes[i].TargetId);
                rows.TextOrNull(call.IdempotencyKey);
                rows.Text("OK");
            }, ct);
    }
}
