using Crm.ServiceDefaults.Data;
using Crm.ServiceDefaults.Errors;
using Dapper;
using Npgsql;

namespace Crm.Sales.Opportunities;

public sealed record ReceiptRow(string ReceiptId, Guid OpportunityId, decimal Amount, string Method, DateTime PaidAt, string RecordedBy);

public sealed record NewReceipt(string ReceiptId, Guid OpportunityId, decimal Amount, string Method, DateTime PaidAt);

/// <summary>
/// Payments against won opportunities. The receipt that completes the amount marks the opportunity's order as
/// pending in the same transaction; <see cref="OrderRecorder"/> then records it in the customer service.
/// </summary>
public sealed class Receipts(NpgsqlDataSource dataSource, Pipeline pipeline, OrderRecorderSignal signal, TimeProvider clock)
{
    private const string Columns = "receipt_id, opportunity_id, amount, method, paid_at, recorded_by";

    /// <returns>The receipt (the earlier one on a retry) and the opportunity after it.</returns>
    public async Task<(ReceiptRow Receipt, OpportunityRow Opportunity)> RecordAsync(NewReceipt r, Action<OpportunityRow> authorize, string recordedBy, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var opp = await OpportunityRepository.FindAsync(connection, tx, "id = @id FOR UPDATE", new { id = r.OpportunityId }, ct)
            ?? throw new NotFoundException("opportunity", r.OpportunityId.ToString());
        authorize(opp);
        var earlier = await connection.QuerySingleOrDefaultAsync<ReceiptRow>(new CommandDefinition(
            $"SELECT {Columns} FROM receipts WHERE receipt_id = @ReceiptId", new { r.ReceiptId }, tx, cancellationToken: ct));
        if (earlier is not null)
        {
            if (earlier.OpportunityId != r.OpportunityId || earlier.Amount != r.Amount)
                throw new AlreadyExistsException("receipt", earlier.ReceiptId,
                    $"Receipt '{Echo.Cut(earlier.ReceiptId)}' was already recorded ({earlier.Amount:0.00} on opportunity {earlier.OpportunityId}).");
            return (earlier, opp); // a retry: nothing new
        }
        StageRules.CheckReceipt(opp.Id, pipeline.Get(opp.Stage), opp.Amount, opp.Paid, r.Amount);
        if (opp.WonAt is { } wonAt && r.PaidAt < wonAt.AddDays(-366))
            throw new ValidationException("paid_at", "is more than a year before the deal was won.");

        var now = clock.UtcNowForDb();
        await connection.ExecuteAsync(new CommandDefinition($"""
            INSERT INTO receipts ({Columns}, recorded_at) VALUES (@ReceiptId, @OpportunityId, @Amount, @Method, @PaidAt, @recordedBy, @now)
            """, new { r.ReceiptId, r.OpportunityId, r.Amount, r.Method, r.PaidAt, recordedBy, now }, tx, cancellationToken: ct));
        var updated = await connection.QuerySingleAsync<OpportunityRow>(new CommandDefinition($"""
            UPDATE opportunities SET paid = paid + @Amount,
                order_status = CASE WHEN paid + @Amount = amount THEN 'pending' ELSE order_status END,
                order_next_attempt = CASE WHEN paid + @Amount = amount THEN @now ELSE order_next_attempt END,
                version = version + 1, updated_at = @now
            WHERE id = @OpportunityId RETURNING {OpportunityRepository.Columns}
            """, new { r.Amount, r.OpportunityId, now }, tx, cancellationToken: ct));
        await Crm.ServiceDefaults.Security.Audit.Audit.RecordAsync(tx, r.OpportunityId.ToString(), ct);
        await tx.CommitAsync(ct);
        if (updated.OrderStatus == "pending") signal.Set();
        return (new ReceiptRow(r.ReceiptId, r.OpportunityId, r.Amount, r.Method, r.PaidAt, recordedBy), updated);
    }

    public async Task<IReadOnlyList<ReceiptRow>> ListAsync(Guid opportunityId, (DateTime PaidAt, string Id)? after, int limit, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        return (await connection.QueryAsync<ReceiptRow>(new CommandDefinition($"""
            SELECT {Columns} FROM receipts WHERE opportunity_id = @opportunityId
              AND (@afterAt::timestamptz IS NULL OR (paid_at, receipt_id) > (@afterAt, @afterId))
            ORDER BY paid_at, receipt_id LIMIT @limit
            """, new { opportunityId, afterAt = after?.PaidAt, afterId = after?.Id, limit }, cancellationToken: ct))).ToList();
    }
}
