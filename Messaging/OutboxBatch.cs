using System.Diagnostics;
using System.Text.Json;
using Npgsql;
using NpgsqlTypes;

namespace Crm.Messaging;

/// <summary>Many outbox rows in one statement, for bulk writers (the streaming import): one round trip instead of one per event.</summary>
public static class OutboxBatch
{
    /// <summary>Writes one outbox row per message, in the list's order, inside the caller's transaction.</summary>
    public static async Task AddRangeAsync<T>(this Outbox outbox, NpgsqlTransaction transaction, IReadOnlyList<T> messages,
        CancellationToken cancellationToken = default) where T : class
    {
        if (messages.Count == 0) return;
        var ids = new Guid[messages.Count];
        var payloads = new string[messages.Count];
        for (var i = 0; i < messages.Count; i++)
        {
            ids[i] = Guid.CreateVersion7();
            payloads[i] = JsonSerializer.Serialize(messages[i], Outbox.Json);
        }
        await using var command = new NpgsqlCommand("""
            INSERT INTO outbox_messages (id, message_type, payload, trace_parent)
            SELECT m.id, $3, m.payload, $4 FROM unnest($1::uuid[], $2::jsonb[]) WITH ORDINALITY AS m(id, payload, n) ORDER BY m.n
            """, transaction.Connection, transaction);
        command.Parameters.Add(new NpgsqlParameter<Guid[]> { TypedValue = ids });
        command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = payloads, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Jsonb });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = Outbox.TypeName(typeof(T)) });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)Activity.Current?.Id ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
