using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Text.Json;
using MassTransit;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Crm.Messaging;

public sealed class OutboxOptions
{
    /// <summary>Rows claimed and published concurrently per round.</summary>
    public int BatchSize { get; set; } = 200;
    /// <summary>Safety-net poll for rows written by other instances or missed wake-ups.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromMilliseconds(500);
    /// <summary>How long one publish may wait for the broker's confirm before the row is retried.</summary>
    public TimeSpan PublishTimeout { get; set; } = TimeSpan.FromSeconds(10);
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromSeconds(30);
    public TimeSpan KeepSentFor { get; set; } = TimeSpan.FromDays(7);
}

/// <summary>
/// Publishes outbox rows to RabbitMQ. Each round claims a batch with FOR UPDATE SKIP LOCKED (so several
/// instances share the work), publishes the batch concurrently with publisher confirms, and marks the
/// confirmed rows sent in the same transaction. Rows that fail are retried with back-off, so a broker
/// outage or a restart loses nothing; a consumer may see a message twice (after a crash between confirm
/// and commit), which the inbox absorbs. The outbox row id is the MessageId.
/// </summary>
public sealed class OutboxRelay(
    NpgsqlDataSource dataSource,
    IBus bus,
    OutboxSignal signal,
    IOptions<OutboxOptions> options,
    ILogger<OutboxRelay> logger) : BackgroundService
{
    public const string MeterName = "Crm.Outbox";
    private static readonly ActivitySource Activities = new(MeterName);
    private static readonly Meter Meter = new(MeterName);
    private static readonly Counter<long> Published = Meter.CreateCounter<long>("crm.outbox.published");
    private static readonly Counter<long> Failed = Meter.CreateCounter<long>("crm.outbox.failed");

    private readonly OutboxOptions _options = options.Value;
    private DateTimeOffset _nextCleanup = DateTimeOffset.MinValue;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var failures = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var (claimed, failed) = await RelayBatchAsync(stoppingToken);
                if (failed > 0)
                {
                    failures++;
                    await Task.Delay(Backoff(failures), stoppingToken);
                    continue;
                }
                failures = 0;
                if (claimed == _options.BatchSize) continue; // more waiting
                await CleanupAsync(stoppingToken);
                await signal.WaitAsync(_options.PollInterval, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                failures++;
                var delay = Backoff(failures);
                logger.LogError(ex, "Outbox relay round failed; retrying in {Delay}", delay);
                await Task.Delay(delay, stoppingToken).ContinueWith(_ => { }, CancellationToken.None);
            }
        }
    }

    private async Task<(int Claimed, int Failed)> RelayBatchAsync(CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var transaction = await connection.BeginTransactionAsync(ct);

        var rows = new List<OutboxRow>(_options.BatchSize);
        await using (var select = new NpgsqlCommand("""
            SELECT seq, id, message_type, payload::text, trace_parent, attempts
            FROM outbox_messages
            WHERE sent_at IS NULL AND next_attempt_at <= now()
            ORDER BY seq
            LIMIT $1
            FOR UPDATE SKIP LOCKED
            """, connection, transaction))
        {
            select.Parameters.Add(new NpgsqlParameter<int> { TypedValue = _options.BatchSize });
            await using var reader = await select.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
                rows.Add(new OutboxRow(reader.GetInt64(0), reader.GetGuid(1), reader.GetString(2), reader.GetString(3),
                    reader.IsDBNull(4) ? null : reader.GetString(4), reader.GetInt32(5)));
        }
        if (rows.Count == 0)
        {
            await transaction.CommitAsync(ct);
            return (0, 0);
        }

        var results = await Task.WhenAll(rows.Select(row => PublishAsync(row, ct)));
        var sent = rows.Where((_, i) => results[i] is null).Select(r => r.Seq).ToArray();
        var failed = rows.Select((r, i) => (Row: r, Error: results[i])).Where(x => x.Error is not null).ToArray();

        if (sent.Length > 0)
        {
            await using var mark = new NpgsqlCommand("UPDATE outbox_messages SET sent_at = now() WHERE seq = ANY($1)", connection, transaction);
            mark.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = sent });
            await mark.ExecuteNonQueryAsync(ct);
        }
        foreach (var (row, error) in failed)
        {
            await using var retry = new NpgsqlCommand("""
                UPDATE outbox_messages
                SET attempts = attempts + 1, last_error = $2, next_attempt_at = now() + $3
                WHERE seq = $1
                """, connection, transaction);
            retry.Parameters.Add(new NpgsqlParameter<long> { TypedValue = row.Seq });
            retry.Parameters.Add(new NpgsqlParameter<string> { TypedValue = error! });
            retry.Parameters.Add(new NpgsqlParameter<TimeSpan> { TypedValue = Backoff(row.Attempts + 1) });
            await retry.ExecuteNonQueryAsync(ct);
        }
        await transaction.CommitAsync(ct);

        Published.Add(sent.Length);
        if (failed.Length > 0)
        {
            Failed.Add(failed.Length);
            logger.LogWarning("Outbox: {Sent} published, {Failed} failed and will be retried; first error: {Error}",
                sent.Length, failed.Length, failed[0].Error);
        }
        return (rows.Count, failed.Length);
    }

    /// <returns>null when the broker confirmed the message, else the error.</returns>
    private async Task<string?> PublishAsync(OutboxRow row, CancellationToken ct)
    {
        var type = Type.GetType(row.MessageType);
        if (type is null) return $"Unknown message type {row.MessageType}";

        using var activity = Activities.StartActivity("outbox publish", ActivityKind.Producer, row.TraceParent);
        activity?.SetTag("messaging.message.id", row.Id);
        try
        {
            var message = JsonSerializer.Deserialize(row.Payload, type, Outbox.Json)!;
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(_options.PublishTimeout);
            await bus.Publish(message, type, context => context.MessageId = row.Id, timeout.Token);
            return null;
        }
        catch (Exception ex) when (!ct.IsCancellationRequested)
        {
            return ex.GetType().Name + ": " + ex.Message;
        }
    }

    private async Task CleanupAsync(CancellationToken ct)
    {
        if (DateTimeOffset.UtcNow < _nextCleanup) return;
        _nextCleanup = DateTimeOffset.UtcNow.AddHours(1);
        await using var command = dataSource.CreateCommand("DELETE FROM outbox_messages WHERE sent_at < now() - $1");
        command.Parameters.Add(new NpgsqlParameter<TimeSpan> { TypedValue = _options.KeepSentFor });
        var deleted = await command.ExecuteNonQueryAsync(ct);
        if (deleted > 0) logger.LogInformation("Outbox: removed {Count} messages sent more than {Days} days ago", deleted, _options.KeepSentFor.TotalDays);
    }

    private TimeSpan Backoff(int attempt) =>
        TimeSpan.FromMilliseconds(Math.Min(_options.MaxRetryDelay.TotalMilliseconds, 250 * Math.Pow(2, Math.Min(attempt - 1, 10))));

    private sealed record OutboxRow(long Seq, Guid Id, string MessageType, string Payload, string? TraceParent, int Attempts);
}
