using Crm.Messaging;
using Npgsql;

namespace Crm.Loyalty.Accounts;

/// <summary>Runs one change of one member's account: transaction, account lock, commit, then wakes the outbox relay.</summary>
public sealed class AccountTransactions(NpgsqlDataSource dataSource, Ledger ledger, Outbox outbox)
{
    public async Task<T> RunAsync<T>(Guid customerId, Func<NpgsqlTransaction, AccountRecord, Task<T>> work, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var transaction = await connection.BeginTransactionAsync(ct);
        var account = await ledger.LockAccountAsync(transaction, customerId, ct);
        var result = await work(transaction, account);
        await transaction.CommitAsync(ct);
        outbox.Wake();
        return result;
    }
}
