using System.Diagnostics;
using System.Text.Json;
using Npgsql;
using NpgsqlTypes;

namespace Crm.Messaging;

/// <summary>
/// Writes integration events into outbox_messages inside the caller's transaction, so an event exists
/// if and only if the change that caused it committed (a trigger copies them into change_events in the same
/// transaction). Call <see cref="Wake"/> after the commit so the relay publishes at once instead of at its next poll,
/// and change feed readers here and in other instances read the new events at once.
/// </summary>
public sealed class Outbox(OutboxSignal signal, ChangeFeed.ChangeNotifications changes)
{
    internal static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public async Task AddAsync<T>(NpgsqlTransaction transaction, T message, CancellationToken cancellationToken = default)
        where T : class
    {
        const string sql = """
            INSERT INTO outbox_messages (id, message_type, payload, trace_parent)
            VALUES ($1, $2, $3, $4)
            """;
        await using var command = new NpgsqlCommand(sql, transaction.Connection, transaction);
        command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = Guid.CreateVersion7() });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = TypeName(typeof(T)) });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = JsonSerializer.Serialize(message, Json), NpgsqlDbType = NpgsqlDbType.Jsonb });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)Activity.Current?.Id ?? DBNull.Value });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Several events of one type in one statement, in order (a pass breaching a thousand SLA targets pays one round trip).</summary>
    public async Task AddRangeAsync<T>(NpgsqlTransaction transaction, IReadOnlyList<T> messages, CancellationToken cancellationToken = default)
        where T : class
    {
        if (messages.Count == 0) return;
        const string sql = """
            INSERT INTO outbox_messages (id, message_type, payload, trace_parent)
            SELECT m.id, $2, m.payload, $4 FROM unnest($1::uuid[], $3::jsonb[]) WITH ORDINALITY AS m(id, payload, n) ORDER BY m.n
            """;
        await using var command = new NpgsqlCommand(sql, transaction.Connection, transaction);
        command.Parameters.Add(new NpgsqlParameter<Guid[]> { TypedValue = messages.Select(_ => Guid.CreateVersion7()).ToArray() });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = TypeName(typeof(T)) });
        command.Parameters.Add(new NpgsqlParameter<string[]>
        {
            TypedValue = messages.Select(m => JsonSerializer.Serialize(m, Json)).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Jsonb,
        });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)Activity.Current?.Id ?? DBNull.Value });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public void Wake()
    {
        signal.Set();
        changes.Committed();
    }

    internal static string TypeName(Type type) => $"{type.FullName}, {type.Assembly.GetName().Name}";
}

/// <summary>Lets writers in this process wake the relay; other instances are caught by its poll.</summary>
public sealed class OutboxSignal
{
    private readonly SemaphoreSlim _semaphore = new(0, 1);

    public void Set()
    {
        try { _semaphore.Release(); }
        catch (SemaphoreFullException) { /* already signalled */ }
    }

    public Task<bool> WaitAsync(TimeSpan timeout, CancellationToken cancellationToken) =>
        _semaphore.WaitAsync(timeout, cancellationToken);
}
