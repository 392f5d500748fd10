using Crm.ServiceDefaults.Data;
using Dapper;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Crm.Campaigns.Marketing;

/// <summary>
/// Tries deferred sends again every <see cref="SchedulerOptions.RetryInterval"/>: those whose not-before time has come (quiet
/// hours over) and those deferred without one (Redis or the customer service did not answer), of running campaigns only, with
/// their occurrence kept. The dispatcher's row lock makes a second instance's copy a no-op.
/// </summary>
public sealed class DeferredRetry(NpgsqlDataSource db, CampaignStore campaigns, CampaignDispatcher dispatcher, IOptions<MarketingOptions> options,
    TimeProvider clock, ILogger<DeferredRetry> logger) : BackgroundService
{
    private const int BatchSize = 500;
    private readonly SemaphoreSlim _gate = new(1, 1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var o = options.Value.Scheduler;
        if (!o.Enabled) return;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await RetryDueAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { return; }
            catch (Exception e)
            {
                logger.LogError(e, "The retry of deferred campaign sends failed; it runs again at the next interval");
            }
            try { await Task.Delay(o.RetryInterval, clock, stoppingToken); }
            catch (OperationCanceledException) { return; }
        }
    }

    /// <returns>Sends made in this pass.</returns>
    public async Task<int> RetryDueAsync(CancellationToken ct)
    {
        await _gate.WaitAsync(ct);
        try
        {
            var now = clock.UtcNowForDb();
            var sent = 0;
            var after = (Campaign: Guid.Empty, Customer: Guid.Empty, Occurrence: "");
            var cache = new Dictionary<Guid, CampaignRow?>();
            while (true)
            {
                List<(Guid CampaignId, Guid CustomerId, string Occurrence)> page;
                await using (var connection = await db.OpenConnectionAsync(ct))
                    page = (await connection.QueryAsync<(Guid, Guid, string)>(new CommandDefinition("""
                        SELECT d.campaign_id, d.customer_id, d.occurrence FROM campaign_deliveries d JOIN campaigns c ON c.campaign_id = d.campaign_id
                        WHERE d.status = 'deferred' AND c.state = 'running' AND (d.not_before IS NULL OR d.not_before <= @now)
                          AND (d.campaign_id, d.customer_id, d.occurrence) > (@campaign, @customer, @occurrence)
                        ORDER BY d.campaign_id, d.customer_id, d.occurrence LIMIT @BatchSize
                        """, new { now, campaign = after.Campaign, customer = after.Customer, occurrence = after.Occurrence, BatchSize },
                        cancellationToken: ct))).ToList();
                foreach (var (campaignId, customerId, occurrence) in page)
                {
                    if (!cache.TryGetValue(campaignId, out var campaign)) cache[campaignId] = campaign = await campaigns.GetAsync(campaignId, ct);
                    if (campaign is null) continue;
                    var tier = occurrence.StartsWith("tier:", StringComparison.Ordinal) ? occurrence[5..] : null;
                    if (await dispatcher.SendAsync(campaign, customerId, occurrence, tier, ct) == SendOutcome.Sent) sent++;
                }
                if (page.Count < BatchSize) break;
                after = page[^1];
            }
            if (sent > 0) logger.LogInformation("Deferred campaign sends retried: {Sent} sent", sent);
            return sent;
        }
        finally { _gate.Release(); }
    }
}
