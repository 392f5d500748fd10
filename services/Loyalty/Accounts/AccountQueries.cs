using Dapper;
using Npgsql;

namespace Crm.Loyalty.Accounts;

public sealed record AccountCheck(long Balance, long LedgerPoints, long GrowthValue, long LedgerGrowth, long OpenLotPoints)
{
    /// <summary>The ledger sums to balance and growth value, and the open lots hold exactly the positive balance.</summary>
    public bool Consistent => Balance == LedgerPoints && GrowthValue == LedgerGrowth && OpenLotPoints == Math.Max(0, Balance);
}

/// <summary>Reads of accounts and their ledger.</summary>
public sealed class AccountQueries(NpgsqlDataSource dataSource)
{
    public async Task<AccountRecord?> GetAsync(Guid customerId, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        return await Ledger.GetAccountAsync(connection, customerId, ct);
    }

    /// <summary>Entries newest first, with ids below <paramref name="beforeId"/>.</summary>
    public async Task<IReadOnlyList<LedgerEntryRecord>> ListLedgerAsync(Guid customerId, long beforeId, int limit, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        var rows = await connection.QueryAsync<Ledger.EntryRow>(new CommandDefinition("""
            SELECT id, customer_id, kind, source, source_ref, points, growth_value, balance_after, note, created_at
            FROM ledger_entries WHERE customer_id = @customerId AND id < @beforeId ORDER BY id DESC LIMIT @limit
            """, new { customerId, beforeId, limit }, cancellationToken: ct));
        return rows.Select(r => r.ToRecord()).ToList();
    }

    public async Task<AccountCheck?> VerifyAsync(Guid customerId, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        return await connection.QuerySingleOrDefaultAsync<AccountCheck>(new CommandDefinition("""
            SELECT a.balance,
                   (SELECT coalesce(sum(points), 0)::bigint FROM ledger_entries WHERE customer_id = a.customer_id) AS ledger_points,
                   a.growth_value,
                   (SELECT coalesce(sum(growth_value), 0)::bigint FROM ledger_entries WHERE customer_id = a.customer_id) AS ledger_growth,
                   (SELECT coalesce(sum(remaining), 0)::bigint FROM point_lots WHERE customer_id = a.customer_id) AS open_lot_points
            FROM accounts a WHERE a.customer_id = @customerId
            """, new { customerId }, cancellationToken: ct));
    }
}
