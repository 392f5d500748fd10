using System.Diagnostics;
using System.Text.Json;
using Crm.ServiceDefaults.Copy;
using Crm.ServiceDefaults.Data;
using Npgsql;
using NpgsqlTypes;

namespace Crm.Messaging;

/// <summary>
/// Writes integration events into outbox_messages inside the caller's transaction, so an event exists
/// if and only if the change that caused it committed, and their copies in change_events (the change feed) in the
/// same statement. The outbox row is only a queue entry, deleted once published (its payload is text, as the relay reads
/// it); change_events is the kept record (jsonb, as partners and reports query it). Each event's JSON is parsed once, by
/// Postgres into the change row, and its customer comes from <see cref="EventCustomer"/> (C#), not from change_event_customer in SQL. Call <see cref="Wake"/> after the commit so the relay publishes at once instead of at its next poll,
/// and change feed readers here and in other instances read the new events at once.
/// </summary>
public sealed class Outbox(OutboxSignal signal, ChangeFeed.ChangeNotifications changes)
{
    internal static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public async Task AddAsync<T>(NpgsqlTransaction transaction, T message, CancellationToken cancellationToken = default)
        where T : class
    {
        await using var command = new NpgsqlCommand(AddSql, transaction.Connection, transaction);
        AddParameters(command.Parameters, message);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// What <see cref="AddAsync{T}"/> writes, as a command to run in an <see cref="NpgsqlBatch"/> with the write's own
    /// statements inside its transaction: one round trip less on a hot write path. Whoever runs the batch must roll the
    /// transaction back when the write turns out not to happen, as for any statement of the write.
    /// </summary>
    public NpgsqlBatchCommand BatchCommand<T>(T message) where T : class
    {
        var command = new NpgsqlBatchCommand(AddSql);
        AddParameters(command.Parameters, message);
        return command;
    }

    /// <summary>The unreferenced data-modifying WITH runs all the same; the change row reads the text parameter as jsonb.</summary>
    private const string AddSql = """
        WITH o AS (
            INSERT INTO outbox_messages (id, message_type, payload, trace_parent)
            VALUES ($1, $2, $3, $4))
        INSERT INTO change_events (event_type, message_id, payload, customer_id)
        VALUES ($5, $1, $3::jsonb, $6)
        """;

    private static void AddParameters<T>(NpgsqlParameterCollection parameters, T message) where T : class
    {
        var payload = JsonSerializer.Serialize(message, Json);
        parameters.Add(new NpgsqlParameter<Guid> { TypedValue = Guid.CreateVersion7() });
        parameters.Add(new NpgsqlParameter<string> { TypedValue = Names<T>.TypeName });
        parameters.Add(new NpgsqlParameter<string> { TypedValue = payload, NpgsqlDbType = NpgsqlDbType.Text });
        parameters.Add(new NpgsqlParameter { Value = (object?)Activity.Current?.Id ?? DBNull.Value });
        parameters.Add(new NpgsqlParameter<string> { TypedValue = Names<T>.EventType });
        parameters.Add(new NpgsqlParameter { Value = (object?)EventCustomer.FromJson(payload) ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
    }

    /// <summary>Computed once per type rather than per event (the assembly name allocates).</summary>
    private static class Names<T>
    {
        public static readonly string TypeName = Outbox.TypeName(typeof(T));
        public static readonly string EventType = Outbox.EventType(typeof(T));
    }

    /// <summary>Several events of one type in one statement, in order (a pass breaching a thousand SLA targets pays one round trip).</summary>
    public async Task AddRangeAsync<T>(NpgsqlTransaction transaction, IReadOnlyList<T> messages, CancellationToken cancellationToken = default)
        where T : class
    {
        if (messages.Count == 0) return;
        const string sql = """
            WITH m AS (SELECT * FROM unnest($1::uuid[], $3::text[], $6::uuid[]) WITH ORDINALITY AS m(id, payload, customer_id, n)),
            o AS (
                INSERT INTO outbox_messages (id, message_type, payload, trace_parent)
                SELECT m.id, $2, m.payload, $4 FROM m ORDER BY m.n)
            INSERT INTO change_events (event_type, message_id, payload, customer_id)
            SELECT $5, m.id, m.payload::jsonb, m.customer_id FROM m ORDER BY m.n
            """;
        var payloads = new string[messages.Count];
        var customers = new Guid?[messages.Count];
        for (var i = 0; i < messages.Count; i++)
        {
            payloads[i] = JsonSerializer.Serialize(messages[i], Json);
            customers[i] = EventCustomer.FromJson(payloads[i]);
        }
        await using var command = new NpgsqlCommand(sql, transaction.Connection, transaction);
        command.Parameters.Add(new NpgsqlParameter<Guid[]> { TypedValue = messages.Select(_ => Guid.CreateVersion7()).ToArray() });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = Names<T>.TypeName });
        command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = payloads, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)Activity.Current?.Id ?? DBNull.Value });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = Names<T>.EventType });
        command.Parameters.Add(new NpgsqlParameter<Guid?[]> { TypedValue = customers, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Uuid });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// For a statement that computes its events itself (a set-based pass writing hundreds of them): two data-modifying
    /// CTEs, <c>outbox_rows</c> and <c>change_rows</c> (one row per event), that write the rows of <paramref name="rows"/>
    /// (a CTE or table with columns <c>id uuid</c>, <c>payload jsonb</c> holding the event as it serializes to JSON, and
    /// <c>n</c>, their order) to the outbox (as text) and the change feed exactly as <see cref="AddRangeAsync{T}"/> does. Each row
    /// also names its event's customer in the column <paramref name="customerColumn"/> (what change_event_customer would
    /// read from the payload; the caller knows it, as for <see cref="CopyRangeAsync{T}"/>): that SQL function cannot be
    /// inlined and costs about 17 µs of Postgres CPU a row against 1 µs for the column. The statement must bind
    /// <c>@outboxTraceParent</c> to <see cref="TraceParent"/>.
    /// </summary>
    public static string InsertCtes<T>(string rows, string customerColumn) where T : class => $"""
        outbox_rows AS (
            INSERT INTO outbox_messages (id, message_type, payload, trace_parent)
            SELECT r.id, '{Names<T>.TypeName}', r.payload::text, @outboxTraceParent::text FROM {rows} r ORDER BY r.n),
        change_rows AS (
            INSERT INTO change_events (event_type, message_id, payload, customer_id)
            SELECT '{Names<T>.EventType}', r.id, r.payload, r.{customerColumn} FROM {rows} r ORDER BY r.n
            RETURNING 1)
        """;

    /// <summary>The trace the events of <see cref="InsertCtes{T}"/> belong to (the current activity's), or null.</summary>
    public static string? TraceParent => Activity.Current?.Id;

    /// <summary>
    /// What <see cref="AddRangeAsync{T}"/> writes, with two binary COPYs instead of one INSERT: for bulk writes (the order
    /// import), where Postgres's per-row statement work was most of the cost. The rows are encoded by <see cref="BinaryCopyRows"/>
    /// rather than Npgsql's importer (a third of a microsecond a value). The change-feed rows are the same: same
    /// transaction (tx), same order; the customer is the one <paramref name="customerOf"/> names for each event (what
    /// change_event_customer reads from its payload, without parsing the JSON again).
    /// </summary>
    public async Task CopyRangeAsync<T>(NpgsqlTransaction transaction, IReadOnlyList<T> messages, Func<T, Guid?> customerOf,
        CancellationToken cancellationToken = default)
        where T : class
    {
        if (messages.Count == 0) return;
        var connection = transaction.Connection!;
        var ids = new Guid[messages.Count];
        var payloads = new string[messages.Count];
        for (var i = 0; i < messages.Count; i++) (ids[i], payloads[i]) = (Guid.CreateVersion7(), JsonSerializer.Serialize(messages[i], Json));
        var traceParent = Activity.Current?.Id;
        await BinaryCopyRows.CopyAsync(connection, "COPY outbox_messages (id, message_type, payload, trace_parent) FROM STDIN (FORMAT BINARY)",
            ids.Length, (rows, i) =>
            {
                rows.StartRow(4);
                rows.Uuid(ids[i]);
                rows.Text(Names<T>.TypeName);
                rows.Text(payloads[i]);
                rows.TextOrNull(traceParent);
            }, cancellationToken);
        await BinaryCopyRows.CopyAsync(connection, "COPY change_events (event_type, message_id, payload, customer_id) FROM STDIN (FORMAT BINARY)",
            ids.Length, (rows, i) =>
            {
                rows.StartRow(4);
                rows.Text(Names<T>.EventType);
                rows.Uuid(ids[i]);
                rows.Jsonb(payloads[i]);
                rows.UuidOrNull(customerOf(messages[i]));
            }, cancellationToken);
    }

    /// <summary>"Crm.Contracts.OrderPaid" → "OrderPaid", as the feed names events.</summary>
    internal static string EventType(Type type) => type.FullName![(type.FullName!.LastIndexOf('.') + 1)..];

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
        // Under load the relay is busy and nearly every commit finds the signal set already: checking first spares a
        // thrown SemaphoreFullException (tens of microseconds) per write. The catch covers the race between the two.
        if (_semaphore.CurrentCount > 0) return;
        try { _semaphore.Release(); }
        catch (SemaphoreFullException) { /* already signalled */ }
    }

    public Task<bool> WaitAsync(TimeSpan timeout, CancellationToken cancellationToken) =>
        _semaphore.WaitAsync(timeout, cancellationToken);
}
