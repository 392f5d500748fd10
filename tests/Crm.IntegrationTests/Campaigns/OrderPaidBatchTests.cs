using Crm.Contracts;
using Crm.IntegrationTests.Loyalty;
using Crm.IntegrationTests.Support;
using Dapper;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;

namespace Crm.IntegrationTests.Campaigns;

/// <summary>
/// OrderPaid consumed in batches (many messages per transaction): a burst published all at once, with some messages
/// redelivered under their own message id and some orders sent again under a new one, lands each order once — in the
/// orders, their lines, the inbox (per message id) and the monthly roll-up.
/// </summary>
[Collection(SuiteCollection.Name)]
public class OrderPaidBatchTests(SuiteFixture suite)
{
    [Fact]
    public async Task A_burst_with_redeliveries_counts_every_order_once()
    {
        // Orders in a month of a year of their own (long past) for four customers of the test's own.
        var year = 1970 + Random.Shared.Next(19);
        var paidAt = new DateTimeOffset(year, 5, 10, 12, 0, 0, TimeSpan.FromHours(8));
        var customers = Enumerable.Range(0, 4).Select(_ => Guid.NewGuid()).ToArray();
        var orders = Enumerable.Range(0, 40).Select(i => new OrderPaid(Guid.NewGuid(), customers[i % 4], $"BATCH-{Guid.NewGuid():N}", "S1", "store",
            [new OrderLineItem("TEA-SET", null, 1, 100m + i)], 100m + i, paidAt.AddMinutes(i))).ToList();
        var messages = orders.Select(o => (Id: Guid.NewGuid(), Order: o)).ToList();
        var redelivered = messages.Take(10).ToList();                                  // the same message id again
        var copies = messages.Skip(10).Take(5).Select(m => (Id: Guid.NewGuid(), m.Order)).ToList(); // the same order, a new message id

        var bus = suite.Campaigns.Services.GetRequiredService<IBus>();
        using (var consumed = new ConsumedMessages(bus))
        {
            await Task.WhenAll(messages.Concat(redelivered).Concat(copies).Select(m => bus.Publish(m.Order, c => c.MessageId = m.Id)));
            foreach (var m in messages.Concat(copies)) await consumed.WaitAsync(m.Id, 1, "every message consumed");
            foreach (var m in redelivered) await consumed.WaitAsync(m.Id, 2, "the redelivered messages consumed twice");
        }

        await using var db = await suite.CampaignsDb.OpenConnectionAsync();
        var ids = customers.ToArray();
        Assert.Equal((40, 40), await db.QuerySingleAsync<(int, int)>("""
            SELECT (SELECT count(*)::int FROM orders WHERE customer_id = ANY (@ids)),
                   (SELECT count(*)::int FROM order_lines l JOIN orders o ON o.order_id = l.order_id WHERE o.customer_id = ANY (@ids))
            """, new { ids }));
        Assert.Equal(45, await db.ExecuteScalarAsync<int>("SELECT count(*)::int FROM inbox_messages WHERE consumer = 'OrderPaidConsumer' AND message_id = ANY (@mids)",
            new { mids = messages.Concat(copies).Select(m => m.Id).ToArray() }));
        // Customer k has the ten orders i ≡ k (mod 4): 100 + i each, so 1,000 + Σ i = 1,000 + 10k + 180.
        var months = (await db.QueryAsync<(Guid Customer, DateTime Month, int Orders, decimal Net, decimal Max, decimal Min)>("""
            SELECT customer_id, month::timestamp, orders, net, max_ticket, min_ticket FROM sales_customer_months WHERE customer_id = ANY (@ids)
            """, new { ids })).ToDictionary(r => r.Customer);
        for (var k = 0; k < 4; k++)
            Assert.Equal((new DateTime(year, 5, 1), 10, 1_180m + 10 * k, 136m + k, 100m + k),
                (months[customers[k]].Month, months[customers[k]].Orders, months[customers[k]].Net, months[customers[k]].Max, months[customers[k]].Min));
    }

    [Fact]
    public async Task An_order_that_cannot_be_stored_is_parked_and_the_rest_of_its_batch_still_lands()
    {
        var customer = Guid.NewGuid();
        var paidAt = new DateTimeOffset(1990 + Random.Shared.Next(19), 7, 1, 10, 0, 0, TimeSpan.FromHours(8));
        OrderPaid Paid(decimal amount) => new(Guid.NewGuid(), customer, $"PARK-{Guid.NewGuid():N}", "S1", "store",
            [new OrderLineItem("TEA-SET", null, 1, amount)], amount, paidAt);
        // 1,000,000,000,000.00 yuan does not fit orders.amount_paid (numeric(14,2)): that order fails wherever it goes.
        var poison = (Id: NewId.NextGuid(), Order: Paid(1_000_000_000_000.00m));
        var good = Enumerable.Range(1, 20).Select(i => (Id: NewId.NextGuid(), Order: Paid(100m + i))).ToList();
        var bus = suite.Campaigns.Services.GetRequiredService<IBus>();
        using (var consumed = new ConsumedMessages(bus))
        {
            // Sent to the campaigns queue only: loyalty, which also consumes OrderPaid, is not this test's subject.
            var queue = await bus.GetSendEndpoint(new Uri("queue:campaigns-order-paid"));
            await Task.WhenAll(good.Take(10).Append(poison).Concat(good.Skip(10)).Select(m => queue.Send(m.Order, c => c.MessageId = m.Id)));
            foreach (var m in good) await consumed.WaitAsync(m.Id, 1, "the good orders");
        }

        await using var db = await suite.CampaignsDb.OpenConnectionAsync();
        // 20 orders of 100 + i: 2,000 + (1 + … + 20) = 2,210.
        Assert.Equal((20, 2_210.00m), await db.QuerySingleAsync<(int, decimal)>(
            "SELECT count(*)::int, coalesce(sum(amount_paid), 0) FROM orders WHERE customer_id = @customer", new { customer }));
        // The failing order was parked by the one-by-one consumer on the queue it came from (before, the whole batch went
        // to MassTransit's retries and then _error), and nothing of it was written.
        await Crm.IntegrationTests.Messaging.Scenario.WaitUntilAsync(async () => await db.ExecuteScalarAsync<int>(
            "SELECT count(*)::int FROM parked_messages WHERE message_id = @Id AND consumer = 'OrderPaidConsumer' AND queue = 'campaigns-order-paid'", new { poison.Id }) == 1,
            TimeSpan.FromSeconds(30), "the failing order parked");
        Assert.Equal(0, await db.ExecuteScalarAsync<int>("SELECT count(*)::int FROM orders WHERE order_id = @OrderId", new { poison.Order.OrderId }));
        await db.ExecuteAsync("DELETE FROM parked_messages WHERE message_id = @Id", new { poison.Id });
    }
}
