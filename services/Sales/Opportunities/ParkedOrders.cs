using Crm.ServiceDefaults.Data;
using Crm.ServiceDefaults.Errors;
using Dapper;
using Npgsql;

namespace Crm.Sales.Opportunities;

/// <summary>
/// The operator's way back for an order the <see cref="OrderRecorder"/> parked: the row goes back to pending with its
/// attempts reset, and the recorder sends it again under the same external order id, so it is never recorded twice.
/// </summary>
public sealed class ParkedOrders(NpgsqlDataSource dataSource, OrderRecorderSignal signal, TimeProvider clock)
{
    public static readonly string[] Statuses = ["none", "pending", "recorded", "parked"];

    /// <returns>The opportunity after the retry; unchanged when its order is already pending or recorded.</returns>
    public async Task<OpportunityRow> RetryAsync(Guid id, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var current = await OpportunityRepository.FindAsync(connection, tx, "id = @id FOR UPDATE", new { id }, ct)
            ?? throw new NotFoundException("opportunity", id.ToString());
        switch (current.OrderStatus)
        {
            case "pending" or "recorded":
                return current; // retried already (or never needed it): nothing to do, and nothing written to the audit log
            case not "parked":
                throw new PreconditionFailedException("ORDER_NOT_PARKED", $"opportunities/{id}",
                    $"Opportunity {id} has order status '{current.OrderStatus}' (paid {current.Paid:0.00} of {current.Amount:0.00}): only a parked order is retried.");
        }
        var now = clock.UtcNowForDb();
        var row = await connection.QuerySingleAsync<OpportunityRow>(new CommandDefinition($"""
            UPDATE opportunities SET order_status = 'pending', order_attempts = 0, order_next_attempt = @now, version = version + 1, updated_at = @now
            WHERE id = @id RETURNING {OpportunityRepository.Columns}
            """, new { id, now }, tx, cancellationToken: ct));
        await Crm.ServiceDefaults.Security.Audit.Audit.RecordAsync(tx, id.ToString(), ct);
        await tx.CommitAsync(ct);
        signal.Set();
        return row;
    }
}
