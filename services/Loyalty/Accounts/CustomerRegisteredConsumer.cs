using Crm.Contracts;
using Crm.Messaging;
using MassTransit;
using Npgsql;

namespace Crm.Loyalty.Accounts;

/// <summary>Opens the member's account when the customer registers (once, however often the event arrives).</summary>
public sealed class CustomerRegisteredConsumer(NpgsqlDataSource dataSource, Ledger ledger) : InboxConsumer<CustomerRegistered>(dataSource)
{
    protected override Task HandleAsync(ConsumeContext<CustomerRegistered> context, NpgsqlTransaction transaction) =>
        ledger.LockAccountAsync(transaction, context.Message.Customer.CustomerId, context.CancellationToken);
}
