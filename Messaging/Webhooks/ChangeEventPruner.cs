using Dapper;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Crm.Messaging.Webhooks;

/// <summary>
/// Deletes change events older than <see cref="ChangeEventRetentionOptions.Retention"/>, except those an enabled webhook
/// endpoint has not passed yet (a disabled endpoint holds nothing back), and delivered webhook log rows as old. A
/// change-feed reader resuming from a token older than the retention continues with the oldest event kept.
/// </summary>
public sealed class ChangeEventPruner(NpgsqlDataSource dataSource, IOptions<ChangeEventRetentionOptions> options, TimeProvider clock,
    ILogger<ChangeEventPruner> logger) : BackgroundService
{
    private readonly ChangeEventRetentionOptions _options = options.Value;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var delay = TimeSpan.FromSeconds(Math.Min(60, _options.PruneInterval.TotalSeconds));
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(delay, clock, stoppingToken);
                await PruneAsync(stoppingToken);
                delay = _options.PruneInterval;
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                logger.LogWarning("Pruning change events failed ({Error}); next try in a minute", ex.Message);
                delay = TimeSpan.FromMinutes(1);
            }
        }
    }

    /// <summary>
    /// One pass; returns how many change events were deleted. Their age is measured on the database's clock, which wrote
    /// occurred_at: a service on a test clock days ahead (the SLA tests) must not prune the events it has just written,
    /// which tests read back now that the outbox no longer keeps them.
    /// </summary>
    public async Task<long> PruneAsync(CancellationToken ct)
    {
        var cutoff = clock.GetUtcNow().UtcDateTime - _options.Retention;
        long total = 0;
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        while (true)
        {
            var deleted = await connection.ExecuteAsync(new CommandDefinition("""
                DELETE FROM change_events WHERE ctid = ANY(ARRAY(
                    SELECT c.ctid FROM change_events c
                    WHERE c.occurred_at < now() - @retention
                      AND NOT EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.enabled AND (c.tx, c.id) > (e.cursor_tx, e.cursor_id))
                    LIMIT @batch))
                """, new { retention = _options.Retention, batch = _options.PruneBatchSize }, cancellationToken: ct));
            total += deleted;
            if (deleted < _options.PruneBatchSize) break;
        }
        await connection.ExecuteAsync(new CommandDefinition(
            "DELETE FROM webhook_deliveries WHERE status = 'delivered' AND delivered_at < @cutoff", new { cutoff }, cancellationToken: ct));
        if (total > 0) logger.LogInformation("Change events: deleted {Count} older than {Retention}", total, _options.Retention);
        return total;
    }
}
