using System.Text.Json;
using Crm.Contracts;
using Crm.IntegrationTests.Support;
using Crm.Loyalty.V1;
using Dapper;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;

namespace Crm.IntegrationTests.Loyalty;

/// <summary>
/// OrderPaid earned in batches (many orders per transaction): bursts published all at once earn exactly what the orders
/// earn one by one — points, growth, tiers, one numbered event per entry — and the guards still hold inside a batch
/// (a message id seen before, an order that cannot earn, a refund racing its order).
/// </summary>
[Collection(SuiteCollection.Name)]
public class EarningBatchTests(SuiteFixture suite)
{
    private readonly LoyaltyService.LoyaltyServiceClient _loyalty = new(suite.Loyalty.Channel);
    private IBus Bus => suite.Loyalty.Services.GetRequiredService<IBus>();

    private static OrderPaid Paid(Guid customerId, decimal amount) =>
        new(Guid.NewGuid(), customerId, "ERP-B-" + Guid.NewGuid().ToString("N")[..10], "SZ-01", "store",
            [new OrderLineItem("RING-AU-750", null, 1, amount)], amount, DateTimeOffset.UtcNow.AddMinutes(-1));

    private Task<Account> AccountAsync(Guid customerId) => _loyalty.GetAccountAsync(new GetAccountRequest { CustomerId = customerId.ToString() }).ResponseAsync;

    private async Task<Account> WaitForAccountAsync(Guid customerId, Func<Account, bool> condition, string what) =>
        await new Shoppers(new Crm.Customer.V1.CustomerService.CustomerServiceClient(suite.Customer.Channel), _loyalty)
            .WaitForAccountAsync(customerId.ToString(), condition, what);

    private async Task PublishAllAsync(IEnumerable<(Guid MessageId, object Message)> messages) =>
        await Task.WhenAll(messages.Select(m => m.Message switch
        {
            OrderPaid p => Bus.Publish(p, c => c.MessageId = m.MessageId),
            OrderRefunded r => Bus.Publish(r, c => c.MessageId = m.MessageId),
            _ => throw new ArgumentException(m.Message.GetType().Name),
        }));

    [Fact]
    public async Task A_burst_of_40_orders_for_each_of_3_members_earns_exactly_with_numbered_events_and_one_TierChanged_at_80001()
    {
        await using var earnedProbe = await EventProbe.StartAsync(suite.Infrastructure.RabbitMq!.AmqpUri, "Crm.Contracts:PointsEarned");
        await using var tierProbe = await EventProbe.StartAsync(suite.Infrastructure.RabbitMq!.AmqpUri, "Crm.Contracts:TierChanged");
        var members = Enumerable.Range(0, 3).Select(_ => Guid.NewGuid()).ToArray();

        // Each member first reaches S2 with one order of 8,001.00 (events 1 and 2: PointsEarned, TierChanged S1 → S2).
        await Task.WhenAll(members.Select(m => Bus.Publish(Paid(m, 8_001.00m))));
        foreach (var m in members) await WaitForAccountAsync(m, a => a.Tier.Code == "S2", "S2 from the first order");
        var outbox = await Markers.PositionAsync(suite.LoyaltyDb);

        // Then 40 orders each, all published at once: 39 of 1,800.99 (1,800 points) and one of 10,000.50 (10,000 points).
        // 8,001 + 39 × 1,800 + 10,000 = 88,201: S3, crossing 80,001 once on the way.
        var burst = members.SelectMany(m => Enumerable.Range(0, 40).Select(i => Paid(m, i == 20 ? 10_000.50m : 1_800.99m))).ToList();
        await PublishAllAsync(burst.Select(o => (NewId.NextGuid(), (object)o)));

        foreach (var m in members)
        {
            var account = await WaitForAccountAsync(m, a => a.GrowthValue >= 88_201, "the burst's points");
            Assert.Equal((88_201L, 88_201L, "S3"), (account.Balance, account.GrowthValue, account.Tier.Code));
            Assert.True((await _loyalty.VerifyAccountAsync(new VerifyAccountRequest { CustomerId = m.ToString() })).Consistent);
        }
        await using (var db = await suite.LoyaltyDb.OpenConnectionAsync())
        {
            // The burst's 120 entries were written by fewer transactions than entries (a batch shares its commit time).
            var times = await db.ExecuteScalarAsync<int>("SELECT count(DISTINCT created_at)::int FROM ledger_entries WHERE customer_id = ANY (@members) AND points <> 8001",
                new { members });
            Assert.InRange(times, 1, 119);
            Assert.Equal(123, await db.ExecuteScalarAsync<int>("SELECT count(*)::int FROM order_earnings WHERE customer_id = ANY (@members)", new { members }));
            Assert.Equal(123, await db.ExecuteScalarAsync<int>("SELECT count(*)::int FROM point_lots WHERE customer_id = ANY (@members) AND order_id IS NOT NULL",
                new { members }));
        }

        // Marker: once all of that is confirmed by the broker, one grant per member; a duplicate event would come before it.
        await earnedProbe.WaitUntilAsync(() => members.All(m => earnedProbe.For("customerId", m.ToString()).Count >= 41), TimeSpan.FromSeconds(30), "41 PointsEarned each");
        await Markers.DrainAsync(suite.LoyaltyDb, outbox);
        foreach (var m in members)
            await _loyalty.AdjustPointsAsync(new AdjustPointsRequest { CustomerId = m.ToString(), Points = 1, Reason = "Marker", IdempotencyKey = Guid.NewGuid().ToString() });
        await earnedProbe.WaitUntilAsync(() => members.All(m => earnedProbe.For("customerId", m.ToString()).Count >= 42), TimeSpan.FromSeconds(30), "the markers");

        foreach (var m in members)
        {
            var earned = earnedProbe.For("customerId", m.ToString()).Select(e => e.Message).Where(e => e.GetProperty("source").GetString() == "order")
                .OrderBy(e => e.GetProperty("sequence").GetInt64()).ToList();
            var tiers = tierProbe.For("customerId", m.ToString()).Select(e => e.Message).OrderBy(e => e.GetProperty("sequence").GetInt64()).ToList();

            // One PointsEarned per order, numbered 1, 3, 4, ... 42 with the TierChanged events (2 and the S3 one) in the gaps.
            Assert.Equal(41, earned.Count);
            Assert.Equal(burst.Where(o => o.CustomerId == m).Select(o => o.OrderId.ToString()).Append(earned[0].GetProperty("sourceRef").GetString()).Order(),
                earned.Select(e => e.GetProperty("sourceRef").GetString()).Order());
            Assert.Equal(10_000, Assert.Single(earned, e => e.GetProperty("points").GetInt64() == 10_000).GetProperty("growthValue").GetInt64());
            Assert.Equal([("S1", "S2", 8_001L), ("S2", "S3", tiers[1].GetProperty("growthValue").GetInt64())],
                tiers.Select(t => (t.GetProperty("oldTier").GetString(), t.GetProperty("newTier").GetString(), t.GetProperty("growthValue").GetInt64())));
            Assert.Equal(Enumerable.Range(1, 43).Select(i => (long)i),
                earned.Concat(tiers).Select(e => e.GetProperty("sequence").GetInt64()).Order());

            // In sequence order each event's balance is the one before plus its points, and S3 comes right after the
            // earning that took growth from below 80,001 to at least it.
            var balances = earned.Select(e => e.GetProperty("balance").GetInt64()).ToList();
            Assert.Equal(earned.Select(e => e.GetProperty("points").GetInt64()).Aggregate(new List<long>(), (sums, p) => [.. sums, (sums.Count == 0 ? 0 : sums[^1]) + p]),
                balances);
            Assert.Equal(88_201, balances[^1]);
            var crossing = earned.Single(e => e.GetProperty("totalGrowthValue").GetInt64() >= 80_001
                                               && e.GetProperty("totalGrowthValue").GetInt64() - e.GetProperty("growthValue").GetInt64() < 80_001);
            Assert.Equal(crossing.GetProperty("sequence").GetInt64() + 1, tiers[1].GetProperty("sequence").GetInt64());
            Assert.Equal(crossing.GetProperty("totalGrowthValue").GetInt64(), tiers[1].GetProperty("growthValue").GetInt64());
        }
    }

    [Fact]
    public async Task A_batch_holding_a_message_id_consumed_before_earns_that_order_once()
    {
        var member = Guid.NewGuid();
        var first = Paid(member, 880.00m);
        var firstId = NewId.NextGuid();
        using var consumed = new ConsumedMessages(Bus);
        await Bus.Publish(first, c => c.MessageId = firstId);
        await consumed.WaitAsync(firstId, 1, "the first delivery");
        Assert.Equal(880, (await AccountAsync(member)).Balance);

        // The same message (same id) again, among 20 new orders of 100.00 (one of them itself published twice, same id).
        var fresh = Enumerable.Range(0, 20).Select(_ => (Id: NewId.NextGuid(), Order: Paid(member, 100.00m))).ToList();
        var messages = fresh.Append((firstId, first)).Append(fresh[7]).Select(m => (m.Item1, (object)m.Item2)).ToList();
        await PublishAllAsync(messages);
        foreach (var m in fresh) await consumed.WaitAsync(m.Id, m.Id == fresh[7].Id ? 2 : 1, "the burst");
        await consumed.WaitAsync(firstId, 2, "the redelivery");

        Assert.Equal((2_880L, 2_880L), ((await AccountAsync(member)).Balance, (await AccountAsync(member)).GrowthValue));
        await using var db = await suite.LoyaltyDb.OpenConnectionAsync();
        Assert.Equal(1, await db.ExecuteScalarAsync<int>("SELECT count(*)::int FROM ledger_entries WHERE idempotency_key = @key", new { key = $"order:{first.OrderId}" }));
        Assert.Equal(21, await db.ExecuteScalarAsync<int>("SELECT count(*)::int FROM ledger_entries WHERE customer_id = @member", new { member }));
        Assert.Equal(21, await db.ExecuteScalarAsync<int>("SELECT count(*)::int FROM inbox_messages WHERE consumer = 'OrderPaidConsumer' AND message_id = ANY (@ids)",
            new { ids = messages.Select(m => m.Item1).ToArray() }));
    }

    [Fact]
    public async Task An_order_that_cannot_earn_sends_its_batch_one_by_one_and_the_others_still_earn()
    {
        var member = Guid.NewGuid();
        // 1,000,000,000,000.00 yuan does not fit order_earnings.amount_paid (numeric(14,2)): that order fails wherever it goes.
        var poison = (Id: NewId.NextGuid(), Order: Paid(member, 1_000_000_000_000.00m));
        var good = Enumerable.Range(1, 20).Select(i => (Id: NewId.NextGuid(), Order: Paid(member, 100m + i + 0.50m))).ToList();
        using var consumed = new ConsumedMessages(Bus);
        // Sent to loyalty's queue only: the campaigns service, which also consumes OrderPaid, is not this test's subject.
        var queue = await Bus.GetSendEndpoint(new Uri("queue:loyalty-order-paid"));
        await Task.WhenAll(good.Take(10).Append(poison).Concat(good.Skip(10)).Select(m => queue.Send(m.Order, c => c.MessageId = m.Id)));

        foreach (var m in good) await consumed.WaitAsync(m.Id, 1, "the good orders");
        var account = await WaitForAccountAsync(member, a => a.Balance == 2_000 + 210, "the 20 good orders: 20 × 100 + (1 + … + 20)");
        Assert.Equal((2_210L, "S1"), (account.GrowthValue, account.Tier.Code));

        // The failing order was parked by the one-by-one consumer, on the queue it came from, and nothing of it was written.
        await using var db = await suite.LoyaltyDb.OpenConnectionAsync();
        await Crm.IntegrationTests.Messaging.Scenario.WaitUntilAsync(async () => await db.ExecuteScalarAsync<int>(
            "SELECT count(*)::int FROM parked_messages WHERE message_id = @Id AND consumer = 'OrderPaidConsumer' AND queue = 'loyalty-order-paid'", new { poison.Id }) == 1,
            TimeSpan.FromSeconds(30), "the failing order parked");
        Assert.Equal(0, await db.ExecuteScalarAsync<int>("SELECT count(*)::int FROM order_earnings WHERE order_id = @OrderId", new { poison.Order.OrderId }));
        Assert.Contains(LogCapture.Instance.Lines, l => l.Contains("OrderPaid batch of") && l.Contains("one by one") && l.Contains("numeric field overflow"));

        // An operator's resolution: the message counts as handled, so a copy swept back meanwhile is skipped.
        await db.ExecuteAsync("""
            WITH gone AS (DELETE FROM parked_messages WHERE message_id = @Id AND consumer = 'OrderPaidConsumer')
            INSERT INTO inbox_messages (message_id, consumer) VALUES (@Id, 'OrderPaidConsumer') ON CONFLICT DO NOTHING
            """, new { poison.Id });
    }

    [Fact]
    public async Task Refunds_racing_their_orders_in_a_burst_still_claw_back()
    {
        var member = Guid.NewGuid();
        var orders = Enumerable.Range(0, 12).Select(i => Paid(member, 1_000.50m)).ToList();
        // Full refunds of orders 0-2 and 300.00 of order 3, published together with the orders: whichever comes first.
        var refunds = orders.Take(3).Select(o => new OrderRefunded("RF-" + Guid.NewGuid().ToString("N"), o.OrderId, member, o.ExternalOrderId,
                1_000.50m, 1_000.50m, 1_000.50m, DateTimeOffset.UtcNow))
            .Append(new OrderRefunded("RF-" + Guid.NewGuid().ToString("N"), orders[3].OrderId, member, orders[3].ExternalOrderId,
                300.00m, 300.00m, 1_000.50m, DateTimeOffset.UtcNow)).ToList();
        await PublishAllAsync(refunds.Cast<object>().Concat(orders).Select(m => (NewId.NextGuid(), m)).OrderBy(_ => Random.Shared.Next()));

        // 12 × 1,000 earned; back 3 × 1,000 and 1,000 − floor(700.50) = 300: 8,700 (S2).
        var account = await WaitForAccountAsync(member, a => a.GrowthValue == 8_700, "every earning and claw-back");
        Assert.Equal((8_700L, "S2"), (account.Balance, account.Tier.Code));
        await using var db = await suite.LoyaltyDb.OpenConnectionAsync();
        Assert.Equal(3_300, await db.ExecuteScalarAsync<long>("SELECT sum(points_clawed) FROM order_earnings WHERE customer_id = @member", new { member }));
        Assert.True((await _loyalty.VerifyAccountAsync(new VerifyAccountRequest { CustomerId = member.ToString() })).Consistent);
    }
}
