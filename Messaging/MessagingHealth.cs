using System.Diagnostics.Metrics;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Crm.Messaging;

/// <summary>
/// Counts of what needs an operator: outbox rows set aside as poison, parked messages still being retried, parked
/// messages failed for good, and how long the oldest event has waited to be published (the broker's absence shows
/// here first: writes go on, their events wait). Read by the gauges crm.outbox.dead, crm.messaging.parked,
/// crm.messaging.failed and crm.outbox.oldest_waiting (cached, refreshed by the relay every 15 s and by every health
/// check) and by <see cref="MessagingHealthCheck"/>.
/// </summary>
public sealed class MessagingStats
{
    public const string MeterName = OutboxRelay.MeterName + ".Stats";
    private readonly NpgsqlDataSource _dataSource;
    private Snapshot _last;

    public MessagingStats(NpgsqlDataSource dataSource, IMeterFactory? meterFactory = null)
    {
        _dataSource = dataSource;
        // One meter per service provider (IMeterFactory), so two services in one process each report their own.
        var meter = meterFactory?.Create(MeterName) ?? new Meter(MeterName);
        meter.CreateObservableGauge("crm.outbox.dead", () => _last.OutboxDead, description: "Outbox rows set aside as unreadable");
        meter.CreateObservableGauge("crm.messaging.parked", () => _last.Parked, description: "Consumed messages parked for redelivery");
        meter.CreateObservableGauge("crm.messaging.failed", () => _last.Failed, description: "Consumed messages failed for good");
        meter.CreateObservableGauge("crm.outbox.oldest_waiting", () => _last.OldestWaiting.TotalSeconds, unit: "s",
            description: "How long the oldest unpublished event has waited");
    }

    /// <param name="OldestWaiting">Age of the oldest event not yet published (zero when none waits).</param>
    /// <param name="LastError">The publish error recorded on that event, if its publish failed.</param>
    public readonly record struct Snapshot(long OutboxDead, long Parked, long Failed, TimeSpan OldestWaiting = default, string? LastError = null);

    public Snapshot Last => _last;

    public async Task<Snapshot> RefreshAsync(CancellationToken ct)
    {
        await using var command = _dataSource.CreateCommand("""
            SELECT (SELECT count(*) FROM outbox_messages WHERE dead_at IS NOT NULL),
                   (SELECT count(*) FROM parked_messages WHERE status = 'parked'),
                   (SELECT count(*) FROM parked_messages WHERE status = 'failed'),
                   oldest.waiting, oldest.last_error
            FROM (SELECT 1) AS one
            LEFT JOIN LATERAL (SELECT extract(epoch FROM now() - created_at)::float8 AS waiting, last_error
                               FROM outbox_messages WHERE dead_at IS NULL ORDER BY seq LIMIT 1) AS oldest ON true
            """);
        await using var reader = await command.ExecuteReaderAsync(ct);
        await reader.ReadAsync(ct);
        return _last = new Snapshot(reader.GetInt64(0), reader.GetInt64(1), reader.GetInt64(2),
            reader.IsDBNull(3) ? TimeSpan.Zero : TimeSpan.FromSeconds(Math.Max(0, reader.GetDouble(3))),
            reader.IsDBNull(4) ? null : reader.GetString(4));
    }
}

/// <summary>
/// Degraded while poison outbox rows are set aside or parked messages have failed for good (both need an operator:
/// see crm.ops.v1.MessagingAdmin), or while an event has waited longer than <c>Outbox:WaitingAlarm</c> to be
/// published (the broker is away or refusing: writes still succeed and nothing is lost, but every consumer lags);
/// the counts are in the result's data and description.
/// </summary>
public sealed class MessagingHealthCheck(MessagingStats stats, IOptions<OutboxOptions> options) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        MessagingStats.Snapshot s;
        try
        {
            s = await stats.RefreshAsync(cancellationToken);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
        {
            // The database check reports an unreachable database; this one only knows it cannot count.
            return HealthCheckResult.Degraded("Cannot read the outbox and parked-message counts.", ex);
        }
        var data = new Dictionary<string, object>
        {
            ["outbox_dead"] = s.OutboxDead,
            ["parked"] = s.Parked,
            ["failed"] = s.Failed,
            ["oldest_waiting_seconds"] = Math.Round(s.OldestWaiting.TotalSeconds, 1),
        };
        var description = $"{s.OutboxDead} outbox messages set aside as unreadable, {s.Failed} consumed messages failed for good, {s.Parked} parked for redelivery.";
        var stuck = s.OldestWaiting > options.Value.WaitingAlarm;
        if (stuck)
            description = $"Events are not being published: the oldest has waited {s.OldestWaiting.TotalSeconds:0} s" +
                          (s.LastError is null ? "" : $" (last error: {s.LastError})") + ". " + description;
        return stuck || s.OutboxDead > 0 || s.Failed > 0
            ? HealthCheckResult.Degraded(description, data: data)
            : HealthCheckResult.Healthy(description, data);
    }
}
