using Crm.Campaigns;
using Crm.Campaigns.Analytics;
using Crm.Contracts;
using Crm.IntegrationTests.Loyalty;
using Crm.IntegrationTests.Support;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Crm.IntegrationTests.Campaigns;

/// <summary>
/// The recompute's facts from the monthly roll-up equal those aggregated from every order, on the same data: orders on both
/// sides of each window's start and of as-of (one paid after it), two first orders at the same instant, a partial and a full
/// refund — kept by the read model's consumers from OrderPaid and OrderRefunded as in production.
/// </summary>
[Collection(SuiteCollection.Name)]
public class MonthlyFactsTests(SuiteFixture suite)
{
    [Fact]
    public async Task Facts_from_the_monthly_roll_up_equal_facts_from_every_order()
    {
        var services = suite.Campaigns.Services;
        var engine = services.GetRequiredService<AnalyticsQueries>().Engine;
        var o = services.GetRequiredService<IOptions<CampaignsOptions>>().Value;
        var now = DateTime.UtcNow;
        var asOf = now.AddTicks(-(now.Ticks % 10)).AddMinutes(-10); // microseconds, as the service keeps them
        var c12 = engine.MonthsBefore(asOf, o.CurrentValueMonths);
        var c24 = engine.MonthsBefore(asOf, o.RfmWindowMonths);
        var (a, b, c) = (Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid());
        var aFirst = engine.MonthsBefore(asOf, 30);
        var paid = new List<OrderPaid>
        {
            Order(a, 100m, asOf.AddMinutes(-5)),   // as-of's month (read from the orders)
            Order(a, 999m, asOf.AddMinutes(1)),    // after as-of: not counted
            Order(a, 120m, c12.AddHours(1)),       // inside both windows
            Order(a, 130m, c12.AddHours(-1)),      // inside the 24-month window only
            Order(a, 140m, c24.AddHours(1)),       // inside the 24-month window only
            Order(a, 150m, c24.AddHours(-1)),      // outside both
            Order(a, 300m, aFirst),                // two first orders at the same instant: the smaller net is the first
            Order(a, 200m, aFirst),
            Order(b, 800m, engine.MonthsBefore(asOf, 6)),  // partly refunded (300): 500
            Order(b, 400m, engine.MonthsBefore(asOf, 20)), // refunded in full: not counted
            Order(b, 250m, engine.MonthsBefore(asOf, 20).AddDays(2)),
            Order(c, 60m, asOf.AddMinutes(-1)),    // a customer whose only order is in as-of's month
        };
        var refunds = new[] { Refund(paid[8], 300m), Refund(paid[9], 400m) };

        var bus = services.GetRequiredService<IBus>();
        using (var consumed = new ConsumedMessages(bus))
        {
            var ids = paid.Select(p => (Id: Guid.NewGuid(), Message: (object)p)).ToList();
            foreach (var m in ids) await bus.Publish(m.Message, ctx => ctx.MessageId = m.Id);
            foreach (var m in ids) await consumed.WaitAsync(m.Id, 1, "every OrderPaid");
            var refundIds = refunds.Select(r => (Id: Guid.NewGuid(), Message: r)).ToList();
            foreach (var m in refundIds) await bus.Publish(m.Message, ctx => ctx.MessageId = m.Id);
            foreach (var m in refundIds) await consumed.WaitAsync(m.Id, 1, "every OrderRefunded");
        }

        async Task<List<CustomerFacts>> Read(bool fromMonths, int parts) =>
            (await ScoreRecompute.ReadFactsAsync(suite.CampaignsDb, engine, o, asOf, fromMonths, parts, CancellationToken.None)).OrderBy(f => f.CustomerId).ToList();
        // Everyone in the suite's database: read in three ranges of ids at once, the facts are those of one read.
        var everyone = await Read(fromMonths: true, parts: 1);
        Assert.Equal(everyone, await Read(fromMonths: true, parts: 3));
        var fromMonths = everyone.Where(f => f.CustomerId == a || f.CustomerId == b || f.CustomerId == c).ToList();
        var fromOrders = (await Read(fromMonths: false, parts: 1)).Where(f => f.CustomerId == a || f.CustomerId == b || f.CustomerId == c).ToList();
        Assert.Equal(fromOrders, fromMonths);

        static object Key(CustomerFacts f) => (f.Orders, f.NetSpend, f.FirstOrderAt, f.LastOrderAt, f.FirstOrderNet, f.OrdersCurrent, f.SpendCurrent,
            f.OrdersWindow, f.SpendWindow);
        var facts = fromMonths.ToDictionary(f => f.CustomerId);
        Assert.Equal((7, 1_140m, (DateTime?)aFirst, (DateTime?)asOf.AddMinutes(-5), 200m, 2, 220m, 4, 490m), Key(facts[a]));
        Assert.Equal((2, 750m, (DateTime?)engine.MonthsBefore(asOf, 20).AddDays(2), (DateTime?)engine.MonthsBefore(asOf, 6), 250m, 1, 500m, 2, 750m),
            Key(facts[b]));
        Assert.Equal((1, 60m, (DateTime?)asOf.AddMinutes(-1), (DateTime?)asOf.AddMinutes(-1), 60m, 1, 60m, 1, 60m), Key(facts[c]));
    }

    private static OrderPaid Order(Guid customer, decimal amount, DateTime paidAt) =>
        new(Guid.NewGuid(), customer, "FACTS-" + Guid.NewGuid().ToString("N"), "S1", "store", [new OrderLineItem("JADE-RING", null, 1, amount)], amount,
            new DateTimeOffset(paidAt, TimeSpan.Zero));

    private static OrderRefunded Refund(OrderPaid order, decimal amount) =>
        new("R-" + Guid.NewGuid().ToString("N"), order.OrderId, order.CustomerId, order.ExternalOrderId, amount, amount, order.AmountPaid, order.PaidAt.AddDays(1));
}
