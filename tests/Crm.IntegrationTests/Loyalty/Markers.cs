using System.Collections.Concurrent;
using Crm.Common.V1;
using Crm.Customer.V1;
using Crm.Loyalty.V1;
using Dapper;
using Google.Protobuf.WellKnownTypes;
using MassTransit;
using Npgsql;

namespace Crm.IntegrationTests.Loyalty;

/// <summary>
/// Absence checks without sleeping. "No duplicate arrived" is only worth something once a duplicate, had there been
/// one, would have arrived: so the test sends a later marker message through the same path and waits for it.
/// <para>
/// Why that is sound for an event probe (a plain RabbitMQ queue bound to the event's exchange): a queue is FIFO and the
/// probe takes one delivery at a time, so whatever was enqueued before the marker is seen before it. What is not
/// ordered is the publishing: the relay publishes a batch of outbox rows concurrently and retries a failed row later,
/// so a row written before the marker can still reach the broker after it. Hence <see cref="DrainAsync"/> first: wait
/// until every outbox row the test has written so far is confirmed by the broker (and so deleted by the relay), and only then cause the marker. Its row is
/// written after those confirms, so it is enqueued behind anything they carried.
/// </para>
/// <para>
/// A consumer is different: loyalty's endpoints handle several messages at once, so a marker handled does not mean an
/// earlier message was. There <see cref="ConsumedMessages"/> waits for the consumer's own word that it finished each
/// copy (MassTransit's consume observer), which is the marker that path offers.
/// </para>
/// </summary>
public static class Markers
{
    /// <summary>Where this database's outbox stands: take it when the test starts, hand it to <see cref="DrainAsync"/>.</summary>
    public static async Task<long> PositionAsync(NpgsqlDataSource db)
    {
        await using var connection = await db.OpenConnectionAsync();
        return await connection.ExecuteScalarAsync<long>(LastSeqSql);
    }

    /// <summary>The last seq handed out: the relay deletes published rows, so max(seq) of the table says nothing.</summary>
    private const string LastSeqSql = "SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence('outbox_messages', 'seq')), 0)";

    /// <summary>
    /// Waits until every outbox row written since <paramref name="from"/> (this test's rows; an earlier test's row set
    /// aside for good must not hold it up) up to now has been published and confirmed.
    /// </summary>
    public static async Task DrainAsync(NpgsqlDataSource db, long from, TimeSpan? timeout = null)
    {
        await using var connection = await db.OpenConnectionAsync();
        var upTo = await connection.ExecuteScalarAsync<long>(LastSeqSql);
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(30));
        while (await connection.ExecuteScalarAsync<long>(
                   "SELECT count(*) FROM outbox_messages WHERE seq > @from AND seq <= @upTo AND dead_at IS NULL", new { from, upTo }) is var unsent and > 0)
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"{unsent} outbox rows up to {upTo} still unsent.");
            await Task.Delay(50);
        }
    }
}

/// <summary>Counts, per message id, the deliveries a bus's consumers have finished (successfully or not).</summary>
public sealed class ConsumedMessages : IConsumeObserver, IDisposable
{
    private readonly ConcurrentDictionary<Guid, int> _finished = new();
    private readonly ConnectHandle _handle;

    public ConsumedMessages(IBus bus) => _handle = bus.ConnectConsumeObserver(this);

    public int Count(Guid messageId) => _finished.GetValueOrDefault(messageId);

    public async Task WaitAsync(Guid messageId, int deliveries, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(30));
        while (Count(messageId) < deliveries)
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"Timed out waiting for {what}: {Count(messageId)} of {deliveries} deliveries of {messageId} consumed.");
            await Task.Delay(20);
        }
    }

    Task IConsumeObserver.PreConsume<T>(ConsumeContext<T> context) => Task.CompletedTask;

    Task IConsumeObserver.PostConsume<T>(ConsumeContext<T> context)
    {
        if (context.MessageId is { } id) _finished.AddOrUpdate(id, 1, (_, n) => n + 1);
        return Task.CompletedTask;
    }

    Task IConsumeObserver.ConsumeFault<T>(ConsumeContext<T> context, Exception exception)
    {
        if (context.MessageId is { } id) _finished.AddOrUpdate(id, 1, (_, n) => n + 1);
        return Task.CompletedTask;
    }

    public void Dispose() => _handle.Disconnect();
}

/// <summary>Members who earn their points the way members do: a customer, a paid order, OrderPaid, loyalty.</summary>
public sealed class Shoppers(CustomerService.CustomerServiceClient customers, LoyaltyService.LoyaltyServiceClient loyalty)
{
    public async Task<string> NewCustomerAsync() =>
        (await customers.CreateCustomerAsync(new CreateCustomerRequest
        {
            Profile = new CustomerProfile { Name = "王芳", Phone = Customer.CustomerProfileTests.UniquePhone() },
        })).Id;

    public async Task<Crm.Customer.V1.Order> PayAsync(string customerId, decimal amount, DateTime? paidAtUtc = null)
    {
        var text = amount.ToString("0.00", System.Globalization.CultureInfo.InvariantCulture);
        var order = new RecordOrderRequest
        {
            CustomerId = customerId, ExternalOrderId = "ERP-" + Guid.NewGuid().ToString("N"), Channel = "store",
            AmountPaid = new Money { Amount = text },
            PaidAt = Timestamp.FromDateTime(DateTime.SpecifyKind(paidAtUtc ?? DateTime.UtcNow.AddMinutes(-1), DateTimeKind.Utc)),
        };
        order.Lines.Add(new OrderLine { Sku = "RING-AU-750", Quantity = 1, UnitPrice = new Money { Amount = text } });
        return await customers.RecordOrderAsync(order);
    }

    /// <summary>A new customer whose <paramref name="points"/> points all come from one paid order (so their lot names it).</summary>
    public async Task<string> WithOrderPointsAsync(long points)
    {
        var customerId = await NewCustomerAsync();
        await PayAsync(customerId, points);
        await WaitForAccountAsync(customerId, a => a.Balance == points, $"{points} points from the order");
        return customerId;
    }

    public async Task<Account> WaitForAccountAsync(string customerId, Func<Account, bool> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            try
            {
                var account = await loyalty.GetAccountAsync(new GetAccountRequest { CustomerId = customerId });
                if (condition(account)) return account;
                if (DateTime.UtcNow > deadline) throw new TimeoutException($"Timed out waiting for {what}; account is {account}");
            }
            catch (Grpc.Core.RpcException e) when (e.StatusCode == Grpc.Core.StatusCode.NotFound && DateTime.UtcNow < deadline) { }
            await Task.Delay(50);
        }
    }
}
