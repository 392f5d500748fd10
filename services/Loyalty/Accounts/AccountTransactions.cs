using Crm.Messaging;
using Npgsql;

namespace Crm.Loyalty.Accounts;

/// <summary>
/// Runs one change of one member's account: transaction, account lock, commit, then wakes the outbox relay.
/// The account must exist (NOT_FOUND otherwise: accounts open on CustomerRegistered or OpenAccount) unless
/// <paramref name="openIfMissing"/> (operator corrections).
/// </summary>
public sealed class AccountTransactions(NpgsqlDataSource dataSource, Ledger ledger, Outbox outbox)
{
    public async Task<T> RunAsync<T>(Guid customerId, Func<NpgsqlTransaction, AccountRecord, Task<T>> work, CancellationToken ct,
        bool openIfMissing = false)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var transaction = await connection.BeginTransactionAsync(ct);
        var account = openIfMissing
            ? await ledger.LockAccountAsync(transaction, customerId, ct)
            : await ledger.LockExistingAccountAsync(transaction, customerId, ct);
        var result = await work(transaction, account);
        await Crm.ServiceDefaults.Security.Audit.Audit.RecordAsync(transaction, customerId.ToString(), ct);
        await transaction.CommitAsync(ct);
        outbox.Wake();
        return result;
    }
}
