using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Text.Json;
using MassTransit;
using MassTransit.Logging;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using OpenTelemetry;

namespace Crm.Messaging;

public sealed class OutboxOptions
{
    /// <summary>Rows claimed and published concurrently per round.</summary>
    public int BatchSize { get; set; } = 200;
    /// <summary>Safety-net poll for rows written by other instances or missed wake-ups.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromMilliseconds(500);
    /// <summary>How long one publish may wait for the broker's confirm before the row is retried.</summary>
    public TimeSpan PublishTimeout { get; set; } = TimeSpan.FromSeconds(10);
    /// <summary>
    /// Publishes that may be outstanding at once, counting those given up after <see cref="PublishTimeout"/> that the
    /// client has not finished yet: a frozen broker cannot make the relay pile up work without bound.
    /// </summary>
    public int MaxInFlight { get; set; } = 400;
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromSeconds(30);
    /// <summary>The health check turns Degraded when an event has waited this long to be published.</summary>
    public TimeSpan WaitingAlarm { get; set; } = TimeSpan.FromSeconds(60);
    /// <summary>
    /// Attempts at a row whose type cannot be resolved or whose payload cannot be read (a poison row) before it is
    /// set aside (dead_at) and no longer claimed. Broker failures do not count: they are not the row's fault.
    /// </summary>
    public int MaxUnreadableAttempts { get; set; } = 10;
    /// <summary>
    /// Connections of the relay's own pool (built from the service's connection string), so neither side can take
    /// the other's connections: a request backlog cannot delay the relay, a stuck broker cannot hold the requests'.
    /// </summary>
    public int MaxPoolSize { get; set; } = 3;
}

/// <summary>The relay's own small pool of connections to the service's database.</summary>
public sealed class OutboxDataSource : IAsyncDisposable
{
    public OutboxDataSource(NpgsqlDataSource serviceDataSource, IConfiguration configuration, IOptions<OutboxOptions> options)
    {
        var connection = new NpgsqlConnectionStringBuilder(WithPassword(serviceDataSource.ConnectionString, configuration))
        {
            MaxPoolSize = Math.Max(1, options.Value.MaxPoolSize),
            MinPoolSize = 0,
        };
        var name = connection.ApplicationName;
        string Named(string role) => string.IsNullOrEmpty(name) ? role : name + "-" + role;
        DataSource = Untraced(new NpgsqlConnectionStringBuilder(connection.ConnectionString)
        {
            ApplicationName = Named("outbox-relay"),
            Options = (connection.Options + " " + ClaimPlan).Trim(),
        });
        // One connection that only sends NOTIFY (ChangeNotifications); named so the change horizon passes over it.
        connection.MaxPoolSize = 1;
        connection.ApplicationName = Named("change-announcer");
        Announcer = Untraced(connection);
    }

    /// <summary>
    /// The relay's statements all go by seq through the primary key. An outbox filling up faster than autovacuum analyses it
    /// (a bulk import: 0 to 150,000 rows in the minute before its first analyse) has statistics that say it is nearly empty,
    /// and Postgres then claims with a parallel scan and sort of the whole queue: 60-200 ms of CPU in three processes per
    /// claim of 200 rows at 100,000 rows waiting, against a walk of the index's first entries.
    /// </summary>
    private const string ClaimPlan = "-c enable_seqscan=off -c max_parallel_workers_per_gather=0";

    /// <summary>
    /// The relay's and the announcer's statements run outside any request, once per round or commit: traced, each would
    /// be a trace of its own (a "lone database poll" the dashboard hides), exported at the write rate. The relay's work
    /// shows in its "outbox publish" spans (in the writer's trace) and the Crm.Outbox metrics instead.
    /// </summary>
    private static NpgsqlDataSource Untraced(NpgsqlConnectionStringBuilder connection) =>
        new NpgsqlDataSourceBuilder(connection.ConnectionString)
            .ConfigureTracing(tracing => tracing.ConfigureCommandFilter(_ => false).ConfigureBatchFilter(_ => false).EnablePhysicalOpenTracing(false))
            .Build();

    public NpgsqlDataSource DataSource { get; }

    /// <summary>The change announcer's connection (<see cref="ChangeFeed.ChangeNotifications"/>).</summary>
    public NpgsqlDataSource Announcer { get; }

    /// <summary>
    /// A data source hands out its connection string without the password; take it from the configured connection
    /// string for the same server, database and user (ConnectionStrings:*, Aspire:Npgsql:ConnectionString).
    /// </summary>
    private static string WithPassword(string connectionString, IConfiguration configuration)
    {
        var target = new NpgsqlConnectionStringBuilder(connectionString);
        if (!string.IsNullOrEmpty(target.Password)) return connectionString;
        var candidates = configuration.GetSection("ConnectionStrings").GetChildren().Select(c => c.Value)
            .Append(configuration["Aspire:Npgsql:ConnectionString"]);
        foreach (var candidate in candidates)
        {
            if (string.IsNullOrWhiteSpace(candidate)) continue;
            NpgsqlConnectionStringBuilder configured;
            try { configured = new NpgsqlConnectionStringBuilder(candidate); }
            catch (ArgumentException) { continue; } // not a Postgres connection string (amqp://, redis)
            if (string.IsNullOrEmpty(configured.Password) || configured.Host != target.Host || configured.Port != target.Port
                || configured.Database != target.Database || configured.Username != target.Username)
                continue;
            target.Password = configured.Password;
            return target.ConnectionString;
        }
        return connectionString; // no password needed (trust, peer, .pgpass) or supplied another way
    }

    public async ValueTask DisposeAsync()
    {
        await DataSource.DisposeAsync();
        await Announcer.DisposeAsync();
    }
}

/// <summary>
/// Publishes outbox rows to RabbitMQ. Each round claims a batch with FOR UPDATE SKIP LOCKED (so several
/// instances share the work), publishes the batch concurrently with publisher confirms, and deletes the
/// confirmed rows in the same transaction: the outbox is only a queue (change_events, written with it, is the service's
/// durable record of its events), and a delete costs Postgres about half of an update that marks a row sent.
/// Back-off is per row (next_attempt_at): a row that fails waits,
/// the others keep flowing. Only when every publish of a round fails (the broker is away) does the whole relay
/// pause briefly. A poison row (type unknown, payload unreadable) is set aside after
/// <see cref="OutboxOptions.MaxUnreadableAttempts"/>, counted in the crm.outbox.dead gauge and reported Degraded by
/// the messaging health check. A consumer may see a message twice (after a crash between confirm and commit), which
/// the inbox absorbs. The outbox row id is the MessageId.
/// <para>
/// The relay works on its own small pool (<see cref="OutboxDataSource"/>) and bounds its publishes in time and number,
/// so a frozen broker holds at most that pool's connections; the row locks it holds while publishing block nobody,
/// since writers only insert outbox rows.
/// </para>
/// </summary>
public sealed class OutboxRelay(
    OutboxDataSource relayDataSource,
    IBus bus,
    OutboxSignal signal,
    MessagingStats stats,
    IOptions<OutboxOptions> options,
    ILogger<OutboxRelay> logger) : BackgroundService
{
    public const string MeterName = "Crm.Outbox";
    private static readonly ActivitySource Activities = new(MeterName);
    private static readonly Meter Meter = new(MeterName);
    private static readonly Counter<long> Published = Meter.CreateCounter<long>("crm.outbox.published");
    private static readonly Counter<long> Failed = Meter.CreateCounter<long>("crm.outbox.failed");
    private static readonly Counter<long> SetAside = Meter.CreateCounter<long>("crm.outbox.set_aside");

    private readonly NpgsqlDataSource _dataSource = relayDataSource.DataSource;
    private readonly OutboxOptions _options = options.Value;
    private readonly SemaphoreSlim _inFlight = new(options.Value.MaxInFlight, options.Value.MaxInFlight);
    private DateTimeOffset _nextStats = DateTimeOffset.MinValue;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var failures = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var round = await RelayBatchAsync(stoppingToken);
                if (round.Published == 0 && round.PublishFailed > 0)
                {
                    // Nothing got through: the broker is away or frozen. Pause the relay, not just the rows.
                    failures++;
                    await Task.Delay(Backoff(failures), stoppingToken);
                    continue;
                }
                failures = 0;
                if (round.Claimed == _options.BatchSize) continue; // more waiting
                await RefreshStatsAsync(stoppingToken);
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

    /// <summary>A round's claim: the oldest rows due, skipping those another instance holds.</summary>
    internal const string ClaimSql = """
        SELECT seq, id, message_type, payload, trace_parent, attempts, unreadable_attempts
        FROM outbox_messages
        WHERE dead_at IS NULL AND next_attempt_at <= now()
        ORDER BY seq
        LIMIT $1
        FOR UPDATE SKIP LOCKED
        """;

    private readonly record struct Round(int Claimed, int Published, int PublishFailed, int Unreadable);

    private async Task<Round> RelayBatchAsync(CancellationToken ct)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(ct);
        await using var transaction = await connection.BeginTransactionAsync(ct);

        var rows = new List<OutboxRow>(_options.BatchSize);
        await using (var select = new NpgsqlCommand(ClaimSql, connection, transaction))
        {
            select.Parameters.Add(new NpgsqlParameter<int> { TypedValue = _options.BatchSize });
            await using var reader = await select.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
                rows.Add(new OutboxRow(reader.GetInt64(0), reader.GetGuid(1), reader.GetString(2), reader.GetString(3),
                    reader.IsDBNull(4) ? null : reader.GetString(4), reader.GetInt32(5), reader.GetInt32(6)));
        }
        if (rows.Count == 0)
        {
            await transaction.CommitAsync(ct);
            return default;
        }

        var results = await Task.WhenAll(rows.Select(row => PublishAsync(row, ct)));
        var sent = rows.Where((_, i) => results[i].Error is null).Select(r => r.Seq).ToArray();
        var failed = rows.Select((r, i) => (Row: r, Result: results[i])).Where(x => x.Result.Error is not null).ToArray();

        if (sent.Length > 0)
        {
            await using var done = new NpgsqlCommand("DELETE FROM outbox_messages WHERE seq = ANY($1)", connection, transaction);
            done.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = sent });
            await done.ExecuteNonQueryAsync(ct);
        }
        var deadNow = 0;
        foreach (var (row, result) in failed)
        {
            var unreadable = result.Unreadable ? row.UnreadableAttempts + 1 : row.UnreadableAttempts;
            var dead = result.Unreadable && unreadable >= _options.MaxUnreadableAttempts;
            if (dead) deadNow++;
            await using var retry = new NpgsqlCommand("""
                UPDATE outbox_messages
                SET attempts = attempts + 1, unreadable_attempts = $4, last_error = $2, next_attempt_at = now() + $3,
                    dead_at = CASE WHEN $5 THEN now() END
                WHERE seq = $1
                """, connection, transaction);
            retry.Parameters.Add(new NpgsqlParameter<long> { TypedValue = row.Seq });
            retry.Parameters.Add(new NpgsqlParameter<string> { TypedValue = result.Error! });
            retry.Parameters.Add(new NpgsqlParameter<TimeSpan> { TypedValue = Backoff(row.Attempts + 1) });
            retry.Parameters.Add(new NpgsqlParameter<int> { TypedValue = unreadable });
            retry.Parameters.Add(new NpgsqlParameter<bool> { TypedValue = dead });
            await retry.ExecuteNonQueryAsync(ct);
        }
        await transaction.CommitAsync(ct);

        Published.Add(sent.Length);
        var unreadableCount = failed.Count(f => f.Result.Unreadable);
        if (failed.Length > 0)
        {
            Failed.Add(failed.Length);
            logger.LogWarning("Outbox: {Sent} published, {Failed} failed and will be retried; first error: {Error}",
                sent.Length, failed.Length, failed[0].Result.Error);
        }
        if (deadNow > 0)
        {
            SetAside.Add(deadNow);
            logger.LogError("Outbox: {Count} unreadable messages set aside after {Attempts} attempts; they stay in outbox_messages with dead_at set",
                deadNow, _options.MaxUnreadableAttempts);
            _nextStats = DateTimeOffset.MinValue; // refresh the gauges at once
        }
        return new Round(rows.Count, sent.Length, failed.Length - unreadableCount, unreadableCount);
    }

    private readonly record struct PublishResult(string? Error, bool Unreadable);

    private async Task<PublishResult> PublishAsync(OutboxRow row, CancellationToken ct)
    {
        object message;
        Type? type;
        try
        {
            type = TypeOf(row.MessageType);
            if (type is null) return new PublishResult($"Unknown message type {row.MessageType}", Unreadable: true);
            message = JsonSerializer.Deserialize(row.Payload, type, Outbox.Json)
                ?? throw new JsonException("The payload is JSON null.");
        }
        catch (Exception ex) when (ex is JsonException or NotSupportedException or ArgumentException or TypeLoadException or FileLoadException or BadImageFormatException)
        {
            return new PublishResult($"Unreadable payload for {row.MessageType}: {ex.GetType().Name}: {ex.Message}", Unreadable: true);
        }

        using var activity = Activities.StartActivity("outbox publish", ActivityKind.Producer, row.TraceParent);
        activity?.SetTag("messaging.message.id", row.Id);
        activity?.SetTag("messaging.message.type", type.Name); // the dashboard's business pulse counts events by type
        try
        {
            if (!await _inFlight.WaitAsync(_options.PublishTimeout, ct))
                return new PublishResult($"More than {_options.MaxInFlight} publishes outstanding; the broker is not confirming", false);
            Task publish;
            // Disposed (and the slot released) only when the client has really finished with the message, even if
            // we stop waiting for it before that.
            var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(_options.PublishTimeout);
            try
            {
                // This span carries the trace to the consumers: its id goes in the header MassTransit's consumers take
                // their parent from. MassTransit's own send span (a second span per message, with a dozen attributes
                // and its own baggage, that said nothing this one does not) is not created.
                using var _ = SuppressInstrumentationScope.Begin();
                publish = bus.Publish(message, type, context =>
                {
                    context.MessageId = row.Id;
                    if (activity is not null) context.Headers.Set(DiagnosticHeaders.ActivityId, activity.Id);
                }, timeout.Token);
            }
            catch
            {
                timeout.Dispose();
                _inFlight.Release();
                throw;
            }
            _ = publish.ContinueWith(static (_, state) =>
            {
                var (cts, slots) = ((CancellationTokenSource, SemaphoreSlim))state!;
                cts.Dispose();
                slots.Release();
            }, (timeout, _inFlight), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            // Do not trust the client to honour the token: stop waiting after the timeout whatever it does.
            await publish.WaitAsync(_options.PublishTimeout, ct);
            return new PublishResult(null, false);
        }
        catch (Exception ex) when (!ct.IsCancellationRequested)
        {
            return new PublishResult(ex.GetType().Name + ": " + ex.Message, false);
        }
    }

    /// <summary>
    /// Resolving an assembly-qualified name parses it and searches the loaded assemblies, every time: once per type
    /// instead of once per message. Unknown names are not kept (a poison row's type may be deployed later).
    /// </summary>
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, Type> Types = new(StringComparer.Ordinal);

    private static Type? TypeOf(string name)
    {
        if (Types.TryGetValue(name, out var known)) return known;
        var type = Type.GetType(name);
        if (type is not null) Types.TryAdd(name, type);
        return type;
    }

    private async Task RefreshStatsAsync(CancellationToken ct)
    {
        var now = DateTimeOffset.UtcNow;
        if (now < _nextStats) return;
        _nextStats = now.AddSeconds(15);
        await stats.RefreshAsync(ct);
    }

    private TimeSpan Backoff(int attempt) =>
        TimeSpan.FromMilliseconds(Math.Min(_options.MaxRetryDelay.TotalMilliseconds, 250 * Math.Pow(2, Math.Min(attempt - 1, 10))));

    private sealed record OutboxRow(long Seq, Guid Id, string MessageType, string Payload, string? TraceParent, int Attempts, int UnreadableAttempts);
}
