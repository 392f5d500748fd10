using System.Diagnostics.Metrics;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;

namespace Crm.Messaging;

/// <summary>
/// Counts of what needs an operator: outbox rows set aside as poison, parked messages still being retried, parked
/// messages failed for good. Read by the gauges crm.outbox.dead, crm.messaging.parked and crm.messaging.failed
/// (cached, refreshed by the relay every 15 s and by every health check) and by <see cref="MessagingHealthCheck"/>.
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
    }

    public readonly record struct Snapshot(long OutboxDead, long Parked, long Failed);

    public Snapshot Last => _last;

    public async Task<Snapshot> RefreshAsync(CancellationToken ct)
    {
        await using var command = _dataSource.CreateCommand("""
            SELECT (SELECT count(*) FROM outbox_messages WHERE dead_at IS NOT NULL),
                   (SELECT count(*) FROM parked_messages WHERE status = 'parked'),
                   (SELECT count(*) FROM parked_messages WHERE status = 'failed')
            """);
        await using var reader = await command.ExecuteReaderAsync(ct);
        await reader.ReadAsync(ct);
        return _last = new Snapshot(reader.GetInt64(0), reader.GetInt64(1), reader.GetInt64(2));
    }
}

/// <summary>
/// Degraded while poison outbox rows are set aside or parked messages have failed for good (both need an operator:
/// see crm.ops.v1.MessagingAdmin); the counts are in the result's data and description.
/// </summary>
public sealed class MessagingHealthCheck(MessagingStats stats) : IHealthCheck
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
        };
        var description = $"{s.OutboxDead} outbox messages set aside as unreadable, {s.Failed} consumed messages failed for good, {s.Parked} parked for redelivery.";
        return s.OutboxDead > 0 || s.Failed > 0
            ? HealthCheckResult.Degraded(description, data: data)
            : HealthCheckResult.Healthy(description, data);
    }
}
