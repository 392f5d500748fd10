using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Crm.Messaging;

/// <summary>
/// Deletes inbox entries older than <see cref="InboxOptions.Retention"/>, in small batches, every
/// <see cref="InboxOptions.PruneInterval"/>. The retention is checked at start to outlast the parking horizon, so a
/// message can no longer come back once its id is forgotten.
/// </summary>
public sealed class InboxPruner(NpgsqlDataSource dataSource, IOptions<InboxOptions> options, ILogger<InboxPruner> logger) : BackgroundService
{
    private readonly InboxOptions _options = options.Value;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Not at the very start: the service has better things to do while it warms up.
        var delay = TimeSpan.FromSeconds(Math.Min(60, _options.PruneInterval.TotalSeconds));
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(delay, stoppingToken);
                await PruneAsync(stoppingToken);
                delay = _options.PruneInterval;
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                logger.LogWarning("Pruning the inbox failed ({Error}); next try in a minute", ex.Message);
                delay = TimeSpan.FromMinutes(1);
            }
        }
    }

    /// <summary>Deletes every inbox entry processed before now − retention; returns how many.</summary>
    public async Task<long> PruneAsync(CancellationToken ct)
    {
        long total = 0;
        while (true)
        {
            await using var command = dataSource.CreateCommand("""
                DELETE FROM inbox_messages WHERE ctid = ANY(ARRAY(
                    SELECT ctid FROM inbox_messages WHERE processed_at < now() - $1 LIMIT $2))
                """);
            command.Parameters.Add(new NpgsqlParameter<TimeSpan> { TypedValue = _options.Retention });
            command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = _options.PruneBatchSize });
            var deleted = await command.ExecuteNonQueryAsync(ct);
            total += deleted;
            if (deleted < _options.PruneBatchSize) break;
        }
        if (total > 0) logger.LogInformation("Inbox: forgot {Count} message ids processed more than {Retention} ago", total, _options.Retention);
        return total;
    }
}
