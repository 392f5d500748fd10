using Crm.Common.V1;
using Crm.Customer.V1;
using Crm.IntegrationTests.Support;
using Crm.Messaging;
using Google.Protobuf.WellKnownTypes;
using Microsoft.Extensions.DependencyInjection;

namespace Crm.IntegrationTests.Messaging;

/// <summary>Customers, orders and events as the customer service makes them, for the messaging scenarios.</summary>
internal sealed class Scenario(SuiteFixture suite)
{
    public CustomerService.CustomerServiceClient Customers { get; } = new(suite.Customer.Channel);

    public async Task<string> NewCustomerAsync() =>
        (await Customers.CreateCustomerAsync(new CreateCustomerRequest
        {
            Profile = new CustomerProfile { Name = "王芳", Phone = Customer.CustomerProfileTests.UniquePhone() },
        })).Id;

    public static RecordOrderRequest Order(string customerId, string amount)
    {
        var order = new RecordOrderRequest
        {
            CustomerId = customerId, ExternalOrderId = "ERP-" + Guid.NewGuid().ToString("N"), Channel = "store",
            AmountPaid = new Money { Amount = amount }, PaidAt = Timestamp.FromDateTime(DateTime.UtcNow.AddMinutes(-1)),
        };
        order.Lines.Add(new OrderLine { Sku = "RING-PT-07", Quantity = 1, UnitPrice = new Money { Amount = amount } });
        return order;
    }

    /// <summary>
    /// Publishes an event the way the customer service does: an outbox row written in a committed transaction of
    /// customerdb, published by the customer service's relay.
    /// </summary>
    public async Task PublishThroughCustomerOutboxAsync<T>(T message) where T : class
    {
        var outbox = suite.Customer.Services.GetRequiredService<Outbox>();
        await using var connection = await suite.CustomerDb.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        await outbox.AddAsync(transaction, message);
        await transaction.CommitAsync();
        outbox.Wake();
    }

    /// <summary>
    /// Waits until the service's bus is connected and its receive endpoints (queues bound to their exchanges) are up:
    /// the bus starts in the background, and an event published before its queue exists never reaches it.
    /// </summary>
    public static Task WaitForBusAsync(IServiceProvider services)
    {
        var bus = services.GetRequiredService<MassTransit.IBusControl>();
        return WaitUntilAsync(() => Task.FromResult(bus.CheckHealth().Status == MassTransit.BusHealthStatus.Healthy),
            TimeSpan.FromSeconds(60), "the bus and its receive endpoints to start");
    }

    /// <summary>Polls <paramref name="condition"/> until it holds; fails with <paramref name="what"/> after <paramref name="timeout"/>.</summary>
    public static async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"Timed out after {timeout.TotalSeconds:0} s waiting for {what}.");
            await Task.Delay(100);
        }
    }
}
