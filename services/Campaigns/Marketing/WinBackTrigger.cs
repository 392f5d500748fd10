using Crm.Campaigns.Segments;
using Crm.Campaigns.V1;
using Dapper;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Crm.Campaigns.Marketing;

/// <summary>
/// Win-back: after each recompute of the stored scores, the customers whose churn level rose into the at-risk band
/// (<see cref="SchedulerOptions.WinBackChurn"/>, "high" by default) since the previous recompute this trigger looked at get
/// every running WIN_BACK campaign whose segment they are in (occurrence "win-back:&lt;run id&gt;", once per rise). It reads
/// recompute_runs and customer_scores only (the analytics code knows nothing of it) and keeps the level it last saw per
/// customer in churn_watch. The very first look only records that baseline. Sends come first and the watch moves after
/// them: a crash in between repeats the sends, which the delivery log's key turns into duplicates. An advisory lock keeps a
/// second instance from doing the same pass.
/// </summary>
public sealed class WinBackTrigger(NpgsqlDataSource db, CampaignStore campaigns, CampaignDispatcher dispatcher, SegmentAudience audience,
    IOptions<MarketingOptions> options, ILogger<WinBackTrigger> logger)
{
    private const long LockKey = 0x57696e4261636b; // "WinBack"

    /// <returns>Messages sent, or null when there was no new recompute (or another instance is on it).</returns>
    public async Task<int?> RunAsync(CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        var (latest, seen) = await connection.QuerySingleAsync<(long? Latest, long? Seen)>(new CommandDefinition(
            "SELECT (SELECT max(id) FROM recompute_runs), (SELECT last_run_id FROM win_back_state)", cancellationToken: ct));
        if (latest is not { } runId || runId == seen) return null;
        if (!await connection.ExecuteScalarAsync<bool>(new CommandDefinition("SELECT pg_try_advisory_lock(@LockKey)", new { LockKey }, cancellationToken: ct)))
            return null;
        try
        {
            var atRisk = options.Value.Scheduler.WinBackChurn;
            var sent = 0;
            if (seen is not null)
            {
                // customer_scores holds one run at a time (replaced whole by the recompute): read it in one snapshot.
                var risen = (await connection.QueryAsync<Guid>(new CommandDefinition("""
                    SELECT s.customer_id FROM customer_scores s LEFT JOIN churn_watch w ON w.customer_id = s.customer_id
                    WHERE s.run_id = @runId AND s.churn = ANY(@atRisk) AND (w.churn IS NULL OR NOT w.churn = ANY(@atRisk))
                    ORDER BY s.customer_id
                    """, new { runId, atRisk }, cancellationToken: ct, commandTimeout: 600))).ToList();
                var running = risen.Count == 0 ? [] : await campaigns.RunningAsync(CampaignKind.WinBack, ct);
                foreach (var campaign in running)
                foreach (var customerId in risen)
                {
                    if (campaign.SegmentId is { } segment && !await audience.ContainsAsync(segment, customerId, ct)) continue;
                    if (await dispatcher.SendAsync(campaign, customerId, $"win-back:{runId}", null, ct) == SendOutcome.Sent) sent++;
                }
                logger.LogInformation("Win-back after recompute {Run}: {Risen} customers rose into the at-risk band, {Sent} messages sent",
                    runId, risen.Count, sent);
            }
            await using var tx = await connection.BeginTransactionAsync(ct);
            // Only the customers whose level changed (or who are new) are written. An ON CONFLICT DO UPDATE whose WHERE
            // skips a row still locks it first: over every customer that was a million WAL-logged row locks after each
            // recompute (118 MB of WAL at the bench's size), landing as a burst on whatever else the database was doing.
            var stored = await connection.ExecuteAsync(new CommandDefinition("""
                INSERT INTO churn_watch (customer_id, churn)
                SELECT s.customer_id, s.churn FROM customer_scores s LEFT JOIN churn_watch w ON w.customer_id = s.customer_id
                WHERE s.run_id = @runId AND (w.customer_id IS NULL OR w.churn IS DISTINCT FROM s.churn)
                ON CONFLICT (customer_id) DO UPDATE SET churn = EXCLUDED.churn
                """, new { runId }, tx, cancellationToken: ct, commandTimeout: 600));
            await connection.ExecuteAsync(new CommandDefinition("""
                INSERT INTO win_back_state (id, last_run_id) VALUES (1, @runId) ON CONFLICT (id) DO UPDATE SET last_run_id = EXCLUDED.last_run_id
                """, new { runId }, tx, cancellationToken: ct));
            await tx.CommitAsync(ct);
            return sent;
        }
        finally
        {
            await connection.ExecuteAsync(new CommandDefinition("SELECT pg_advisory_unlock(@LockKey)", new { LockKey }, cancellationToken: CancellationToken.None));
        }
    }
}
