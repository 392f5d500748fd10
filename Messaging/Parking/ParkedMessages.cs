using System.Text.Json;
using MassTransit;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;

namespace Crm.Messaging.Parking;

/// <summary>A parked message as operators see it.</summary>
public sealed record ParkedMessage(
    long Id, Guid MessageId, string Consumer, string Queue, string MessageType, string Payload, string Headers,
    string Status, int Attempts, DateTime FirstFailedAt, DateTime LastFailedAt, DateTime NextAttemptAt, string LastError);

/// <summary>
/// The parked_messages table of this service's database: messages a consumer could not apply, swept back to the
/// consumer's queue by <see cref="ParkedMessageSweeper"/> with growing delays until they apply or are marked failed.
/// </summary>
public sealed class ParkedMessages(NpgsqlDataSource dataSource, IOptions<ParkingOptions> options, ParkingSignal signal)
{
    /// <summary>Set on a message re-sent from the park; the consumer then deletes the parked row when it applies it.</summary>
    public const string ReplayHeader = "Crm-Parked-Replay";

    public const string Parked = "parked";
    public const string Failed = "failed";

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private readonly ParkingOptions _options = options.Value;

    /// <summary>
    /// Parks <paramref name="context"/>'s message for <paramref name="consumer"/>, or records one more failed attempt
    /// when it is parked already; after <see cref="ParkingOptions.MaxAttempts"/> it is marked failed.
    /// </summary>
    public async Task<(string Status, int Attempts)> ParkAsync<TMessage>(ConsumeContext<TMessage> context, string consumer, Exception error,
        CancellationToken ct) where TMessage : class
    {
        const string sql = """
            INSERT INTO parked_messages AS p (message_id, consumer, queue, message_type, payload, headers, conversation_id,
                correlation_id, sent_at, status, attempts, next_attempt_at, last_error)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, CASE WHEN $12 <= 1 THEN 'failed' ELSE 'parked' END, 1, now() + $10, $11)
            ON CONFLICT (message_id, consumer) DO UPDATE SET
                attempts        = p.attempts + 1,
                status          = CASE WHEN p.attempts + 1 >= $12 THEN 'failed' ELSE 'parked' END,
                last_failed_at  = now(),
                last_error      = EXCLUDED.last_error,
                next_attempt_at = now() + least($13::interval, $10::interval * power(2, least(p.attempts, 30)))
            RETURNING status, attempts
            """;
        var headers = context.Headers.GetAll()
            .Where(h => !h.Key.StartsWith("MT-", StringComparison.OrdinalIgnoreCase) && h.Key != ReplayHeader)
            .ToDictionary(h => h.Key, h => h.Value?.ToString());
        await using var command = dataSource.CreateCommand(sql);
        command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = context.MessageId!.Value });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = consumer });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = QueueName(context.ReceiveContext.InputAddress) });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = Outbox.TypeName(typeof(TMessage)) });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = JsonSerializer.Serialize(context.Message, Outbox.Json), NpgsqlDbType = NpgsqlDbType.Jsonb });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = JsonSerializer.Serialize(headers, Json), NpgsqlDbType = NpgsqlDbType.Jsonb });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)context.ConversationId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)context.CorrelationId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)context.SentTime?.ToUniversalTime() ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        command.Parameters.Add(new NpgsqlParameter<TimeSpan> { TypedValue = _options.FirstDelay });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = Describe(error) });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = _options.MaxAttempts });
        command.Parameters.Add(new NpgsqlParameter<TimeSpan> { TypedValue = _options.MaxDelay });
        await using var reader = await command.ExecuteReaderAsync(ct);
        await reader.ReadAsync(ct);
        return (reader.GetString(0), reader.GetInt32(1));
    }

    /// <summary>Deletes the parked copy of a message inside the transaction that applies it.</summary>
    internal static async Task DeleteAsync(NpgsqlTransaction transaction, Guid messageId, string consumer, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand("DELETE FROM parked_messages WHERE message_id = $1 AND consumer = $2",
            transaction.Connection, transaction);
        command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = messageId });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = consumer });
        await command.ExecuteNonQueryAsync(ct);
    }

    /// <summary>
    /// Claims parked messages that are due and pushes their next attempt out by the delay they would get if the
    /// redelivery fails (a lease: a redelivery that never reports back is sent again then; the inbox absorbs a copy).
    /// </summary>
    internal async Task<IReadOnlyList<ParkedMessage>> ClaimDueAsync(CancellationToken ct)
    {
        const string sql = $"""
            UPDATE parked_messages p
            SET next_attempt_at = now() + least($2::interval, $3::interval * power(2, least(p.attempts, 30)))
            FROM (SELECT id AS due_id FROM parked_messages WHERE status = 'parked' AND next_attempt_at <= now()
                  ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) due
            WHERE p.id = due.due_id
            RETURNING {Columns}
            """;
        await using var command = dataSource.CreateCommand(sql);
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = _options.BatchSize });
        command.Parameters.Add(new NpgsqlParameter<TimeSpan> { TypedValue = _options.MaxDelay });
        command.Parameters.Add(new NpgsqlParameter<TimeSpan> { TypedValue = _options.FirstDelay });
        return await ReadAllAsync(command, ct);
    }

    /// <summary>A parked message that cannot be re-sent at all (its type is gone): failed for good.</summary>
    internal async Task MarkFailedAsync(long id, string error, CancellationToken ct)
    {
        await using var command = dataSource.CreateCommand(
            "UPDATE parked_messages SET status = 'failed', last_error = $2, last_failed_at = now() WHERE id = $1");
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = id });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = error });
        await command.ExecuteNonQueryAsync(ct);
    }

    /// <summary>Parked and failed messages in id order, after <paramref name="afterId"/>; <paramref name="status"/> null for both.</summary>
    public async Task<IReadOnlyList<ParkedMessage>> ListAsync(string? status, string? consumer, long afterId, int limit, CancellationToken ct)
    {
        await using var command = dataSource.CreateCommand($"""
            SELECT {Columns} FROM parked_messages
            WHERE id > $1 AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR consumer = $3)
            ORDER BY id LIMIT $4
            """);
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = afterId });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)status ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)consumer ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = limit });
        return await ReadAllAsync(command, ct);
    }

    /// <summary>
    /// Makes parked or failed messages due now (a failed one gets one more attempt; if that fails too it is failed
    /// again). Returns how many were scheduled. <paramref name="id"/> null means all that match the filters.
    /// </summary>
    public async Task<int> ReplayAsync(long? id, string? status, string? consumer, CancellationToken ct)
    {
        await using var command = dataSource.CreateCommand("""
            UPDATE parked_messages SET status = 'parked', next_attempt_at = now()
            WHERE ($1::bigint IS NULL OR id = $1) AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR consumer = $3)
            """);
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)id ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Bigint });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)status ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)consumer ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        var count = await command.ExecuteNonQueryAsync(ct);
        if (count > 0) signal.Set();
        return count;
    }

    private const string Columns = """
        id, message_id, consumer, queue, message_type, payload::text, headers::text, status, attempts,
        first_failed_at, last_failed_at, next_attempt_at, last_error
        """;

    private static async Task<IReadOnlyList<ParkedMessage>> ReadAllAsync(NpgsqlCommand command, CancellationToken ct)
    {
        var rows = new List<ParkedMessage>();
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
            rows.Add(new ParkedMessage(reader.GetInt64(0), reader.GetGuid(1), reader.GetString(2), reader.GetString(3), reader.GetString(4),
                reader.GetString(5), reader.GetString(6), reader.GetString(7), reader.GetInt32(8), reader.GetDateTime(9),
                reader.GetDateTime(10), reader.GetDateTime(11), reader.GetString(12)));
        return rows;
    }

    internal static Dictionary<string, string?> ReadHeaders(string json) =>
        JsonSerializer.Deserialize<Dictionary<string, string?>>(json, Json) ?? [];

    /// <summary>rabbitmq://host/vhost/loyalty-order-paid → loyalty-order-paid</summary>
    internal static string QueueName(Uri inputAddress) => inputAddress.AbsolutePath.TrimEnd('/').Split('/')[^1];

    internal static string Describe(Exception error)
    {
        var text = error.GetType().Name + ": " + error.Message;
        return text.Length <= 2000 ? text : text[..2000];
    }
}

/// <summary>Wakes the sweeper when an operator replays messages.</summary>
public sealed class ParkingSignal
{
    private readonly SemaphoreSlim _semaphore = new(0, 1);

    public void Set()
    {
        try { _semaphore.Release(); }
        catch (SemaphoreFullException) { /* already signalled */ }
    }

    public Task<bool> WaitAsync(TimeSpan timeout, CancellationToken cancellationToken) => _semaphore.WaitAsync(timeout, cancellationToken);
}
