using System.Text.Json;
using Crm.Contracts;
using Crm.Customer.V1;
using Crm.IntegrationTests.Loyalty;
using Crm.IntegrationTests.Support;
using Crm.Tickets.V1;
using Dapper;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;

namespace Crm.IntegrationTests.Tickets;

[Collection(SuiteCollection.Name)]
public class CareCallTests(SuiteFixture suite) : ClockedTickets(suite)
{
    /// <summary>
    /// A real order of 50,000.00 recorded in the customer service (threshold 20,000, delay 3 days by default) schedules one
    /// care call. The same OrderPaid delivered again with its own message id (the inbox) and once more with a new one
    /// (the order id) changes nothing; a 10,000.00 order schedules none. The ticket opens only once the delay has passed,
    /// and exactly one, however often the scheduler runs.
    /// </summary>
    [Fact]
    public async Task OrderPaid_of_50000_over_a_20000_threshold_opens_exactly_one_care_call_after_the_delay_even_when_delivered_twice()
    {
        var shoppers = new Shoppers(new CustomerService.CustomerServiceClient(Suite.Customer.Channel),
            new Crm.Loyalty.V1.LoyaltyService.LoyaltyServiceClient(Suite.Loyalty.Channel));
        var bus = Host.Services.GetRequiredService<IBus>();
        using var consumed = new ConsumedMessages(bus);
        var customerId = await shoppers.NewCustomerAsync();
        var big = await shoppers.PayAsync(customerId, 50_000m);
        var small = await shoppers.PayAsync(customerId, 10_000m);
        var (bigMessageId, bigEvent) = await PublishedOrderPaidAsync(big.Id);
        var (smallMessageId, _) = await PublishedOrderPaidAsync(small.Id);
        await consumed.WaitAsync(bigMessageId, 1, "the 50,000 OrderPaid");
        await consumed.WaitAsync(smallMessageId, 1, "the 10,000 OrderPaid");

        // Delivered twice more: the same message id, and a copy under a new id.
        var copyId = Guid.NewGuid();
        await bus.Publish(bigEvent, c => c.MessageId = bigMessageId);
        await bus.Publish(bigEvent, c => c.MessageId = copyId);
        await consumed.WaitAsync(bigMessageId, 2, "the redelivered OrderPaid");
        await consumed.WaitAsync(copyId, 1, "the copy of OrderPaid under a new message id");

        await using (var connection = await Db.OpenConnectionAsync())
        {
            var calls = (await connection.QueryAsync<(Guid OrderId, DateTime DueAt)>(
                "SELECT order_id, due_at FROM care_calls WHERE customer_id = @c", new { c = Guid.Parse(customerId) })).ToList();
            var call = Assert.Single(calls);
            Assert.Equal(Guid.Parse(big.Id), call.OrderId);
            Assert.True((call.DueAt - big.PaidAt.ToDateTime().AddDays(3)).Duration() < TimeSpan.FromMilliseconds(1), $"due {call.DueAt:O}");
        }

        var history = new ListCustomerHistoryRequest { CustomerId = customerId };
        Clock.SetUtcNow(big.PaidAt.ToDateTime().AddDays(3).AddMinutes(-1));
        await RunSchedulerAsync();
        Assert.Empty((await Admin.ListCustomerHistoryAsync(history)).Tickets);

        Clock.SetUtcNow(big.PaidAt.ToDateTime().AddDays(3));
        await Task.WhenAll(RunSchedulerAsync(), RunSchedulerAsync());
        await RunSchedulerAsync();
        var care = Assert.Single((await Admin.ListCustomerHistoryAsync(history)).Tickets);
        Assert.Equal(TicketType.CareCall, care.Type);
        var ticket = await Admin.GetTicketAsync(new GetTicketRequest { Id = care.Id });
        Assert.Equal((big.ExternalOrderId, "system", Channel.Phone), (ticket.OrderRef, ticket.OpenedBy, ticket.Channel));
        Assert.Equal(1, await OutboxCountAsync("TicketOpened", care.Id));
    }

    /// <summary>The OrderPaid the customer service published for an order: its outbox row id is the message id.</summary>
    private async Task<(Guid MessageId, OrderPaid Event)> PublishedOrderPaidAsync(string orderId)
    {
        await using var connection = await Suite.CustomerDb.OpenConnectionAsync();
        var row = await connection.QuerySingleAsync<(Guid Id, string Payload)>(
            "SELECT message_id, payload::text FROM change_events WHERE event_type = 'OrderPaid' AND payload->>'orderId' = @orderId",
            new { orderId });
        return (row.Id, JsonSerializer.Deserialize<OrderPaid>(row.Payload, new JsonSerializerOptions(JsonSerializerDefaults.Web))!);
    }
}
