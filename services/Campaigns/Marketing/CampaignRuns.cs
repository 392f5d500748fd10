using Dapper;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Crm.Campaigns.Marketing;

/// <summary>
/// The scheduler's runs table: the instance that inserts (campaign, occurrence) first does the work, so two instances never both
/// run one occurrence. A run left unfinished longer than the lease (its instance died) is taken over.
/// </summary>
public sealed class CampaignRuns(NpgsqlDataSource db, IOptions<MarketingOptions> options)
{
    public async Task<bool> TryClaimAsync(Guid campaignId, string occurrence, DateTime dueAt, DateTime now, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        return await connection.ExecuteScalarAsync<int?>(new CommandDefinition("""
            INSERT INTO campaign_runs (campaign_id, occurrence, due_at, started_at) VALUES (@campaignId, @occurrence, @dueAt, @now)
            ON CONFLICT (campaign_id, occurrence) DO UPDATE SET started_at = EXCLUDED.started_at
            WHERE campaign_runs.finished_at IS NULL AND campaign_runs.started_at < @staleBefore
            RETURNING 1
            """, new { campaignId, occurrence, dueAt, now, staleBefore = now - options.Value.Scheduler.RunLease }, cancellationToken: ct)) == 1;
    }

    public async Task FinishAsync(Guid campaignId, string occurrence, int sent, DateTime now, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE campaign_runs SET finished_at = @now, sent = @sent WHERE campaign_id = @campaignId AND occurrence = @occurrence",
            new { campaignId, occurrence, sent, now }, cancellationToken: ct));
    }

    /// <summary>Gives an unfinished claim back after a failure, so the next tick (here or elsewhere) runs the occurrence again.</summary>
    public async Task ReleaseAsync(Guid campaignId, string occurrence)
    {
        await using var connection = await db.OpenConnectionAsync();
        await connection.ExecuteAsync(new CommandDefinition(
            "DELETE FROM campaign_runs WHERE campaign_id = @campaignId AND occurrence = @occurrence AND finished_at IS NULL", new { campaignId, occurrence }));
    }

    /// <summary>The due time of the latest finished run whose occurrence starts with <paramref name="prefix"/>.</summary>
    public async Task<DateTime?> LastFinishedAsync(Guid campaignId, string prefix, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        return await connection.ExecuteScalarAsync<DateTime?>(new CommandDefinition("""
            SELECT max(due_at) FROM campaign_runs WHERE campaign_id = @campaignId AND starts_with(occurrence, @prefix) AND finished_at IS NOT NULL
            """, new { campaignId, prefix }, cancellationToken: ct));
    }
}
