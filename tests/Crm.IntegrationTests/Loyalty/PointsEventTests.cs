using System.Text.Json;
using Crm.Common.V1;
using Crm.Customer.V1;
using Crm.IntegrationTests.Support;
using Crm.Loyalty.V1;

namespace Crm.IntegrationTests.Loyalty;

/// <summary>
/// What other services see of a member's points: one event per ledger entry, whatever the path, and every points and
/// tier event numbered 1, 2, 3, ... per account so a consumer of absolute values can drop a stale one.
/// </summary>
[Collection(SuiteCollection.Name)]
public class PointsEventTests(SuiteFixture suite)
{
    private static readonly string[] PointsEvents = ["PointsEarned", "PointsDeducted", "PointsRedeemed", "PointsExpired", "PointsClawedBack"];
    private readonly CustomerService.CustomerServiceClient _customers = new(suite.Customer.Channel);
    private readonly LoyaltyService.LoyaltyServiceClient _loyalty = new(suite.Loyalty.Channel);

    private Shoppers Shoppers => new(_customers, _loyalty);

    private sealed class Probes(Dictionary<string, EventProbe> probes) : IAsyncDisposable
    {
        public static async Task<Probes> StartAsync(Uri amqp) =>
            new(new Dictionary<string, EventProbe>(await Task.WhenAll(PointsEvents.Append("TierChanged").Select(async type =>
                KeyValuePair.Create(type, await EventProbe.StartAsync(amqp, "Crm.Contracts:" + type))))));

        /// <summary>The member's points and tier events, by sequence number.</summary>
        public List<(string Type, JsonElement Message, long Seq)> For(string customerId) =>
            probes.SelectMany(p => p.Value.For("customerId", customerId).Select(e => (p.Key, e.Message, e.Message.GetProperty("sequence").GetInt64())))
                .OrderBy(e => e.Item3).ToList();

        public async Task WaitAsync(string customerId, Func<List<(string Type, JsonElement Message, long Seq)>, bool> condition, string what)
        {
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (!condition(For(customerId)))
            {
                if (DateTime.UtcNow > deadline)
                    throw new TimeoutException($"Timed out waiting for {what}; got {string.Join(", ", For(customerId).Select(e => $"{e.Seq}:{e.Type}"))}");
                await Task.Delay(50);
            }
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var probe in probes.Values) await probe.DisposeAsync();
        }
    }

    private Task<LedgerEntry> AdjustAsync(string customerId, long points, string reason = "Goodwill") =>
        _loyalty.AdjustPointsAsync(new AdjustPointsRequest { CustomerId = customerId, Points = points, Reason = reason, IdempotencyKey = Guid.NewGuid().ToString() }).ResponseAsync;

    [Fact]
    public async Task Every_ledger_entry_publishes_one_event_and_the_account_numbers_them_in_order()
    {
        await using var probes = await Probes.StartAsync(suite.Infrastructure.RabbitMq!.AmqpUri);
        var customerId = await Shoppers.NewCustomerAsync();
        var outbox = await Markers.PositionAsync(suite.LoyaltyDb);

        // Every kind of entry: an order (crossing into S2), an activity, a check-in, a grant, a deduction, a redemption,
        // a paid lottery draw that wins points, and a refund that takes the member back to S1.
        var order = await Shoppers.PayAsync(customerId, 8_100m);
        await Shoppers.WaitForAccountAsync(customerId, a => a.Balance == 8_100, "the order's points");
        await _loyalty.RegisterActivityAsync(new RegisterActivityRequest { CustomerId = customerId, Type = ActivityType.Survey, ActivityId = "nps-" + Guid.NewGuid().ToString("N")[..8] });
        await _loyalty.CheckInAsync(new CheckInRequest { CustomerId = customerId });
        await AdjustAsync(customerId, +10, "Goodwill for a late delivery");
        var deduction = await AdjustAsync(customerId, -20, "Gift handed over at the counter");
        var goods = await _loyalty.UpsertRewardAsync(new UpsertRewardRequest { Reward = new Reward
        {
            Id = "goods-" + Guid.NewGuid().ToString("N")[..12], Name = "Polishing cloth", Kind = RewardKind.Goods, PointsCost = 30, Stock = -1, Active = true,
        } });
        await _loyalty.RedeemAsync(new RedeemRequest { CustomerId = customerId, RewardId = goods.Id, IdempotencyKey = Guid.NewGuid().ToString() });
        var lottery = new Reward
        {
            Id = "draw-" + Guid.NewGuid().ToString("N")[..12], Name = "Lucky draw", Kind = RewardKind.Lottery, PointsCost = 10, Stock = -1, Active = true,
        };
        lottery.Prizes.Add(new Prize { Id = "p7", Name = "7 points", Kind = PrizeKind.Points, Probability = 1.0, Stock = -1, Points = 7 });
        await _loyalty.UpsertRewardAsync(new UpsertRewardRequest { Reward = lottery });
        await _loyalty.DrawAsync(new DrawRequest { CustomerId = customerId, RewardId = lottery.Id, IdempotencyKey = Guid.NewGuid().ToString() });
        await _customers.RefundOrderAsync(new RefundOrderRequest { RefundId = "RF-" + Guid.NewGuid(), OrderId = order.Id, Amount = new Money { Amount = "200.00" } });
        await Shoppers.WaitForAccountAsync(customerId, a => a.Tier.Code == "S1", "the claw-back");

        // Marker (see Markers): once all of that is confirmed, one more grant; its event comes after any duplicate.
        await probes.WaitAsync(customerId, e => e.Count >= 11, "the eleven events");
        await Markers.DrainAsync(suite.LoyaltyDb, outbox);
        await AdjustAsync(customerId, +1, "Marker");
        await probes.WaitAsync(customerId, e => e.Any(x => x.Type == "PointsEarned" && x.Message.GetProperty("sourceRef").GetString() == "Marker"), "the marker");

        var events = probes.For(customerId);
        Assert.Equal(Enumerable.Range(1, 12).Select(i => (long)i), events.Select(e => e.Seq));
        Assert.Equal([
            "PointsEarned order", "TierChanged order", "PointsEarned activity", "PointsEarned activity", "PointsEarned admin",
            "PointsDeducted", "PointsRedeemed", "PointsRedeemed", "PointsEarned activity", "PointsClawedBack", "TierChanged refund",
            "PointsEarned admin",
        ], events.Select(e => e.Type switch
        {
            "PointsEarned" => "PointsEarned " + e.Message.GetProperty("source").GetString(),
            "TierChanged" => "TierChanged " + e.Message.GetProperty("reason").GetString(),
            _ => e.Type,
        }));

        // One points event per ledger entry, in the ledger's order, each with the balance after its entry.
        var ledger = (await _loyalty.ListLedgerAsync(new ListLedgerRequest { CustomerId = customerId, PageSize = 50 })).Entries.Reverse().ToList();
        var pointsEvents = events.Where(e => e.Type != "TierChanged").ToList();
        Assert.Equal(ledger.Select(e => e.BalanceAfter), pointsEvents.Select(e => e.Message.GetProperty("balance").GetInt64()));
        Assert.Equal(ledger.Select(e => Math.Abs(e.Points)), pointsEvents.Select(e => e.Message.GetProperty("points").GetInt64()));

        var deducted = Assert.Single(events, e => e.Type == "PointsDeducted").Message;
        Assert.Equal((20L, "Gift handed over at the counter", deduction.Id, deduction.BalanceAfter),
            (deducted.GetProperty("points").GetInt64(), deducted.GetProperty("reason").GetString(), deducted.GetProperty("entryId").GetInt64(),
             deducted.GetProperty("balance").GetInt64()));
    }

    [Fact]
    public async Task Concurrent_changes_are_numbered_without_gaps_and_the_highest_number_carries_the_final_balance()
    {
        await using var probes = await Probes.StartAsync(suite.Infrastructure.RabbitMq!.AmqpUri);
        var customerId = await Shoppers.WithOrderPointsAsync(1_000); // sequence 1

        await Task.WhenAll(Enumerable.Range(1, 30).Select(i => AdjustAsync(customerId, i % 3 == 0 ? -7 : +5)));
        await probes.WaitAsync(customerId, e => e.Count >= 31, "31 events");

        var events = probes.For(customerId);
        Assert.Equal(Enumerable.Range(1, 31).Select(i => (long)i), events.Select(e => e.Seq));
        // A consumer that keeps the balance of the highest sequence ends where the account is, whatever the arrival order.
        var account = await _loyalty.GetAccountAsync(new GetAccountRequest { CustomerId = customerId });
        Assert.Equal(1_000 + 20 * 5 - 10 * 7, account.Balance);
        Assert.Equal(account.Balance, events[^1].Message.GetProperty("balance").GetInt64());
    }
}
