using Crm.Loyalty.Accounts;
using Crm.ServiceDefaults.Data;
using Crm.Messaging;
using Dapper;
using Npgsql;

namespace Crm.Loyalty.Expiry;

public sealed record ExpiringPointsRow(Guid CustomerId, long Points, DateTime ExpiresAt);

/// <summary>
/// Expires the lots whose time has come (oldest first, each lot once: a lot's remaining points drop to zero in
/// the same transaction as the expiry entry), and answers whose points expire soon.
/// </summary>
public sealed class PointsExpiry(NpgsqlDataSource dataSource, Ledger ledger, Outbox outbox, TimeProvider clock, ILogger<PointsExpiry> logger)
{
    /// <returns>How many points expired.</returns>
    public async Task<long> ExpireDueAsync(CancellationToken ct)
    {
        var now = clock.UtcNowForDb();
        long total = 0;
        while (true)
        {
            await using var connection = await dataSource.OpenConnectionAsync(ct);
            var due = (await connection.QueryAsync<Guid>(new CommandDefinition(
                "SELECT DISTINCT customer_id FROM point_lots WHERE remaining > 0 AND expires_at <= @now LIMIT 500",
                new { now }, cancellationToken: ct))).ToList();
            if (due.Count == 0) break;
            foreach (var customerId in due)
            {
                await using var tx = await connection.BeginTransactionAsync(ct);
                var account = await ledger.LockAccountAsync(tx, customerId, ct);
                var result = await ledger.ExpireDueAsync(tx, account, now, ct);
                await tx.CommitAsync(ct);
                total -= result?.Entry.Points ?? 0;
            }
            outbox.Wake();
        }
        if (total > 0) logger.LogInformation("Expired {Points} points due by {Now:u}", total, now);
        return total;
    }

    /// <summary>Members with points expiring within <paramref name="withinDays"/> days, by customer id after <paramref name="after"/>.</summary>
    public async Task<IReadOnlyList<ExpiringPointsRow>> ListExpiringAsync(int withinDays, Guid after, int limit, CancellationToken ct)
    {
        var now = clock.UtcNowForDb();
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        var rows = await connection.QueryAsync<ExpiringPointsRow>(new CommandDefinition("""
            SELECT customer_id, sum(remaining)::bigint AS points, min(expires_at) AS expires_at
            FROM point_lots
            WHERE remaining > 0 AND expires_at > @now AND expires_at <= @until AND customer_id > @after
            GROUP BY customer_id
            ORDER BY customer_id
            LIMIT @limit
            """, new { now, until = now.AddDays(withinDays), after, limit }, cancellationToken: ct));
        return rows.ToList();
    }
}

/// <summary>Runs the expiry every hour (and at start), so year-end expiry happens within the hour after midnight.</summary>
public sealed class PointsExpiryService(PointsExpiry expiry, ILogger<PointsExpiryService> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromHours(1));
        do
        {
            try
            {
                await expiry.ExpireDueAsync(stoppingToken);
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                logger.LogError(ex, "Points expiry run failed; it runs again within the hour");
            }
        } while (await timer.WaitForNextTickAsync(stoppingToken));
    }
}
