using Crm.ServiceDefaults.Errors;
using Npgsql;

namespace Crm.Loyalty.Accounts;

/// <summary>
/// Operator corrections of spendable points. They never touch growth value (tiers are earned, not granted),
/// a deduction cannot take the balance below zero, and a retried adjustment (same key) is applied once.
/// </summary>
public sealed class PointsAdjustments(AccountTransactions accounts, Ledger ledger)
{
    public async Task<LedgerEntryRecord> AdjustAsync(Guid customerId, long points, string reason, string idempotencyKey, CancellationToken ct)
    {
        try
        {
            return await AdjustOnceAsync(customerId, points, reason, idempotencyKey, ct);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UniqueViolation && ex.ConstraintName == "ledger_entries_idempotency_key")
        {
            // The same key for another member at the same moment: each call locked only its own account.
            throw new AlreadyExistsException("adjustment", idempotencyKey,
                $"Idempotency key '{Echo.Cut(idempotencyKey)}' was used at the same moment for an adjustment to another customer.");
        }
    }

    private Task<LedgerEntryRecord> AdjustOnceAsync(Guid customerId, long points, string reason, string idempotencyKey, CancellationToken ct)
    {
        var key = $"admin:{idempotencyKey}";
        return accounts.RunAsync(customerId, async (tx, account) =>
        {
            if (await Ledger.FindEntryAsync(tx, key, ct) is { } earlier)
            {
                if (earlier.CustomerId != customerId || earlier.Points != points)
                    throw new AlreadyExistsException("adjustment", idempotencyKey,
                        $"Idempotency key '{Echo.Cut(idempotencyKey)}' was already used for an adjustment of {earlier.Points} points to customer {earlier.CustomerId}.");
                Crm.ServiceDefaults.Security.Audit.Audit.MarkReplayed();
                return earlier;
            }
            var change = new Change(EntryKind.Adjust, "admin", reason, points, 0, key, reason);
            var (entry, _) = points > 0
                ? await ledger.EarnAsync(tx, account, change, ct)
                : await ledger.SpendAsync(tx, account, change, ct);
            return entry;
        }, ct, openIfMissing: true); // an operator correction may open the account
    }
}
