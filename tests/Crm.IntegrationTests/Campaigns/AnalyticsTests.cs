using System.Globalization;
using System.Text.Json;
using Crm.Campaigns.V1;
using Crm.Common.V1;
using Crm.Contracts;
using Crm.Customer.V1;
using Crm.IntegrationTests.Loyalty;
using Crm.IntegrationTests.Support;
using Dapper;
using Google.Protobuf.WellKnownTypes;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;

namespace Crm.IntegrationTests.Campaigns;

/// <summary>
/// The analytics read model end to end: orders and refunds recorded through the customer service → outbox → RabbitMQ →
/// the campaign service's inbox consumers → RFM, deciles, sales reports, model fits and the rebuild. Each test ranks its
/// own customers (a tag of its own) and reports on its own store, so the suite's other customers do not move its numbers.
/// </summary>
[Collection(SuiteCollection.Name)]
public class AnalyticsTests(SuiteFixture suite)
{
    private readonly CustomerService.CustomerServiceClient _customers = new(suite.Customer.Channel);
    private readonly AnalyticsService.AnalyticsServiceClient _analytics = new(suite.Campaigns.ChannelFor(Crm.ServiceDefaults.Security.Roles.Marketing));
    private readonly AnalyticsService.AnalyticsServiceClient _admin = new(suite.Campaigns.Channel);
    private static readonly TimeSpan Shanghai = TimeSpan.FromHours(8);

    private async Task<string> NewCustomerAsync(string tag)
    {
        var profile = new CustomerProfile { Name = "林晓", Phone = Customer.CustomerProfileTests.UniquePhone(), Region = "上海" };
        profile.Tags.Add(tag);
        return (await _customers.CreateCustomerAsync(new CreateCustomerRequest { Profile = profile })).Id;
    }

    private static Money Yuan(decimal amount) => new() { Amount = amount.ToString("0.00", CultureInfo.InvariantCulture) };

    /// <param name="paidAtShanghai">Wall-clock time in the brand's time zone (UTC+8).</param>
    private async Task<Order> PayAsync(string customerId, decimal amount, DateTime? paidAtShanghai = null, string? store = null,
        params (string Sku, int Quantity, decimal UnitPrice)[] lines)
    {
        var paidAt = paidAtShanghai is { } local ? new DateTimeOffset(local, Shanghai).UtcDateTime : DateTime.UtcNow.AddMinutes(-5);
        var request = new RecordOrderRequest
        {
            CustomerId = customerId, ExternalOrderId = "CAMP-" + Guid.NewGuid().ToString("N"), Channel = "store", StoreId = store ?? "",
            AmountPaid = Yuan(amount), PaidAt = Timestamp.FromDateTime(DateTime.SpecifyKind(paidAt, DateTimeKind.Utc)),
        };
        foreach (var (sku, quantity, unitPrice) in lines.Length > 0 ? lines : [("GOLD-RING", 1, amount)])
            request.Lines.Add(new OrderLine { Sku = sku, Quantity = quantity, UnitPrice = Yuan(unitPrice) });
        return await _customers.RecordOrderAsync(request);
    }

    private Task<Refund> RefundAsync(string orderId, decimal? amount = null) =>
        _customers.RefundOrderAsync(new RefundOrderRequest { RefundId = "RF-" + Guid.NewGuid(), OrderId = orderId, Amount = amount is { } a ? Yuan(a) : null }).ResponseAsync;

    private static async Task<T> WaitForAsync<T>(Func<Task<T>> read, Func<T, bool> done, string what, int seconds = 20)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            T value = default!;
            try
            {
                value = await read();
                if (done(value)) return value;
            }
            catch (Grpc.Core.RpcException e) when (e.StatusCode == Grpc.Core.StatusCode.NotFound) { }
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"Timed out waiting for {what}; last: {value}");
            await Task.Delay(50);
        }
    }

    private Task<CustomerAnalytics> ProfileAsync(string customerId, string tag, Timestamp? asOf = null) =>
        _analytics.GetCustomerAnalyticsAsync(new GetCustomerAnalyticsRequest { CustomerId = customerId, PopulationTag = tag, AsOf = asOf }).ResponseAsync;

    private Task<Distribution> DecilesAsync(string tag) =>
        _analytics.GetDistributionAsync(new GetDistributionRequest { Kind = DistributionKind.CustomerDeciles, PopulationTag = tag }).ResponseAsync;

    [Fact]
    public async Task A_refund_moves_the_monetary_score_and_decile_and_an_order_delivered_twice_counts_once()
    {
        var tag = "camp-" + Guid.NewGuid().ToString("N")[..10];
        // Nine customers spending 1,000 ... 9,000 and one spending 10,000: 55,000 in all.
        var others = new List<string>();
        for (var i = 1; i <= 9; i++)
        {
            var id = await NewCustomerAsync(tag);
            await PayAsync(id, i * 1_000m);
            others.Add(id);
        }
        var big = await NewCustomerAsync(tag);
        var order = await PayAsync(big, 10_000m);

        var deciles = await WaitForAsync(() => DecilesAsync(tag), d => d.TotalCount == 10, "ten customers with spend");
        Assert.Equal("55000.00", deciles.TotalRevenue.Amount);
        Assert.All(deciles.Buckets, b => Assert.Equal(1, b.Count));
        Assert.Equal(100.0, deciles.Buckets.Sum(b => b.RevenueSharePercent), 9);
        Assert.Equal(100.0 * 10_000 / 55_000, deciles.Buckets[0].RevenueSharePercent, 9); // 18.18%: the top tenth is the 10,000 customer

        var before = await ProfileAsync(big, tag);
        Assert.Equal((1, "10000.00", 5, 1, 5, "515", 1), (before.OrderCount, before.NetSpend.Amount, before.RecencyScore, before.FrequencyScore,
            before.MonetaryScore, before.RfmCell, before.SpendDecile));

        // Loyalty's events reach the profile too: 10,000 points and tier S2 (growth value 10,000).
        await WaitForAsync(() => ProfileAsync(big, tag), p => p.Tier == "S2" && p.PointsBalance == 10_000, "tier and points from loyalty");

        // The same OrderPaid again: once with its own message id (the inbox drops it), once as a new message (the order id does).
        Guid messageId;
        OrderPaid paid;
        await using (var customerDb = await suite.CustomerDb.OpenConnectionAsync())
        {
            var row = await customerDb.QuerySingleAsync<(Guid Id, string Payload)>("""
                SELECT message_id, payload::text FROM change_events WHERE event_type = 'OrderPaid' AND payload->>'orderId' = @id
                """, new { id = order.Id });
            (messageId, paid) = (row.Id, JsonSerializer.Deserialize<OrderPaid>(row.Payload, new JsonSerializerOptions(JsonSerializerDefaults.Web))!);
        }
        var bus = suite.Campaigns.Services.GetRequiredService<IBus>();
        using (var consumed = new ConsumedMessages(bus))
        {
            var copyId = Guid.NewGuid();
            await bus.Publish(paid, ctx => ctx.MessageId = messageId);
            await bus.Publish(paid, ctx => ctx.MessageId = copyId);
            await consumed.WaitAsync(messageId, 1, "the redelivered OrderPaid");
            await consumed.WaitAsync(copyId, 1, "the copy of OrderPaid under a new message id");
        }
        var again = await ProfileAsync(big, tag);
        Assert.Equal((1, "10000.00", "515", 1), (again.OrderCount, again.NetSpend.Amount, again.RfmCell, again.SpendDecile));
        await using (var db = await suite.CampaignsDb.OpenConnectionAsync())
            Assert.Equal(1, await db.ExecuteScalarAsync<int>("SELECT count(*) FROM order_lines WHERE order_id = @id", new { id = Guid.Parse(order.Id) }));

        // A refund of 9,500 leaves 500: monetary 500.00 scores 1 (bands are closed above), and the customer drops to the last tenth.
        await RefundAsync(order.Id, 9_500m);
        var after = await WaitForAsync(() => ProfileAsync(big, tag), p => p.NetSpend.Amount == "500.00", "the refund in the read model");
        Assert.Equal((1, 1, "511", 10), (after.OrderCount, after.MonetaryScore, after.RfmCell, after.SpendDecile));
        await WaitForAsync(() => ProfileAsync(big, tag), p => p.Tier == "S1" && p.PointsBalance == 500, "the claw-back and tier change from loyalty");
        deciles = await DecilesAsync(tag);
        Assert.Equal("45500.00", deciles.TotalRevenue.Amount);
        Assert.Equal("500.00", deciles.Buckets[9].Revenue.Amount);
        Assert.Equal("9000.00", deciles.Buckets[0].Revenue.Amount);

        // The rest of it: a full refund takes the order out altogether.
        await RefundAsync(order.Id);
        var gone = await WaitForAsync(() => ProfileAsync(big, tag), p => p.OrderCount == 0, "the full refund");
        Assert.Equal(("0.00", "", 0), (gone.NetSpend.Amount, gone.RfmCell, gone.SpendDecile));

        // Profile changes arrive by CustomerUpdated.
        var current = await _customers.GetCustomerAsync(new GetCustomerRequest { Id = big });
        var update = new UpdateCustomerRequest
        {
            Id = big, Version = current.Version, Profile = new CustomerProfile { Region = "北京", MarketingConsent = true },
            UpdateMask = new FieldMask(),
        };
        update.UpdateMask.Paths.Add("region");
        update.UpdateMask.Paths.Add("marketing_consent");
        await _customers.UpdateCustomerAsync(update);
        await WaitForAsync(() => ProfileAsync(big, tag), p => p.Region == "北京" && p.MarketingConsent, "the profile update");
    }

    private Task<SalesReport> ReportAsync(string store, Granularity granularity) =>
        _analytics.GetSalesReportAsync(new GetSalesReportRequest
        {
            From = new Google.Type.Date { Year = 2025, Month = 12, Day = 1 }, To = new Google.Type.Date { Year = 2026, Month = 6, Day = 30 },
            Granularity = granularity, StoreId = store,
        }).ResponseAsync;

    private static IEnumerable<(string, string, int, string, string, string, int)> Rows(SalesReport r) =>
        r.Periods.Select(p => (p.Label, p.Total.Amount, p.OrderCount, p.AverageTicket.Amount, p.MaxTicket.Amount, p.MinTicket.Amount, p.CustomerCount));

    [Fact]
    public async Task Sales_reports_by_year_quarter_month_and_iso_week_match_a_hand_computed_fixture()
    {
        var store = "STORE-" + Guid.NewGuid().ToString("N")[..8];
        var tag = "rep-" + Guid.NewGuid().ToString("N")[..8];
        var (c1, c2, c3) = (await NewCustomerAsync(tag), await NewCustomerAsync(tag), await NewCustomerAsync(tag));
        // Brand time (Shanghai). A: 23:30 on 31 December 2025 → 2025, but ISO week 2026-W01 (which starts Monday 29 December).
        await PayAsync(c1, 100m, new DateTime(2025, 12, 31, 23, 30, 0), store, ("RING", 1, 100m));
        await PayAsync(c2, 300m, new DateTime(2026, 1, 1, 0, 30, 0), store, ("NECKLACE", 2, 150m));   // B
        await PayAsync(c1, 200m, new DateTime(2025, 12, 29, 10, 0, 0), store, ("RING", 2, 100m));      // C: Monday of 2026-W01
        await PayAsync(c3, 50m, new DateTime(2025, 12, 28, 10, 0, 0), store, ("EARRING", 1, 50m));     // D: Sunday of 2025-W52
        await PayAsync(c2, 1_000m, new DateTime(2026, 4, 1, 9, 0, 0), store, ("NECKLACE", 1, 1_000m)); // E: Q2
        var f = await PayAsync(c3, 400m, new DateTime(2026, 3, 31, 23, 59, 0), store, ("RING", 1, 400m)); // F: Q1, 2026-W14
        var g = await PayAsync(c1, 600m, new DateTime(2026, 2, 10, 12, 0, 0), store, ("EARRING", 5, 120m)); // G: refunded in full
        await RefundAsync(f.Id, 150m);
        await RefundAsync(g.Id);

        var years = await WaitForAsync(() => ReportAsync(store, Granularity.Year),
            r => r.Total.OrderCount == 6 && r.Total.Total.Amount == "1900.00", "the fixture's six orders net of refunds");
        Assert.Equal("Asia/Shanghai", years.TimeZone);
        Assert.Equal(("1900.00", 6, "316.67", "1000.00", "50.00", 3, 2.0),
            (years.Total.Total.Amount, years.Total.OrderCount, years.Total.AverageTicket.Amount, years.Total.MaxTicket.Amount, years.Total.MinTicket.Amount,
                years.Total.CustomerCount, years.Total.PurchaseFrequency));
        Assert.Equal([("2025", "350.00", 3, "116.67", "200.00", "50.00", 2), ("2026", "1550.00", 3, "516.67", "1000.00", "250.00", 2)], Rows(years));
        Assert.Equal(1.5, years.Periods[0].PurchaseFrequency);

        Assert.Equal([("2025-Q4", "350.00", 3, "116.67", "200.00", "50.00", 2), ("2026-Q1", "550.00", 2, "275.00", "300.00", "250.00", 2),
                ("2026-Q2", "1000.00", 1, "1000.00", "1000.00", "1000.00", 1)],
            Rows(await ReportAsync(store, Granularity.Quarter)));
        Assert.Equal([("2025-12", "350.00", 3, "116.67", "200.00", "50.00", 2), ("2026-01", "300.00", 1, "300.00", "300.00", "300.00", 1),
                ("2026-03", "250.00", 1, "250.00", "250.00", "250.00", 1), ("2026-04", "1000.00", 1, "1000.00", "1000.00", "1000.00", 1)],
            Rows(await ReportAsync(store, Granularity.Month)));
        var weeks = await ReportAsync(store, Granularity.IsoWeek);
        Assert.Equal([("2025-W52", "50.00", 1, "50.00", "50.00", "50.00", 1), ("2026-W01", "600.00", 3, "200.00", "300.00", "100.00", 2),
                ("2026-W14", "1250.00", 2, "625.00", "1000.00", "250.00", 2)],
            Rows(weeks));
        Assert.Equal(new Google.Type.Date { Year = 2025, Month = 12, Day = 29 }, weeks.Periods[1].Start);

        // Best sellers: RING 1 + 2 + 1 = 4 pieces for 100 + 200 + 250 (F net of its refund); NECKLACE 3 for 1,300; EARRING 1 for 50.
        var all = new ListTopSkusRequest
        {
            From = new Google.Type.Date { Year = 2025, Month = 12, Day = 1 }, To = new Google.Type.Date { Year = 2026, Month = 6, Day = 30 },
            Ranking = SkuRanking.Quantity, StoreId = store,
        };
        var byQuantity = await _analytics.ListTopSkusAsync(all);
        Assert.Equal([("RING", 4L, "550.00"), ("NECKLACE", 3L, "1300.00"), ("EARRING", 1L, "50.00")],
            byQuantity.Skus.Select(s => (s.Sku, s.Quantity, s.Revenue.Amount)));
        all.Ranking = SkuRanking.Revenue;
        all.PageSize = 2;
        var page1 = await _analytics.ListTopSkusAsync(all);
        Assert.Equal(["NECKLACE", "RING"], page1.Skus.Select(s => s.Sku));
        all.PageToken = page1.NextPageToken;
        var page2 = await _analytics.ListTopSkusAsync(all);
        Assert.Equal(["EARRING"], page2.Skus.Select(s => s.Sku));
        Assert.Equal("", page2.NextPageToken);

        // Growth from December 2025 into 2026: RING 300 → 250 (−16.67%), EARRING 50 → 0 (−100%); NECKLACE had no base.
        var growth = await _analytics.ListFastestGrowingSkusAsync(new ListFastestGrowingSkusRequest
        {
            BaseFrom = new Google.Type.Date { Year = 2025, Month = 12, Day = 1 }, BaseTo = new Google.Type.Date { Year = 2025, Month = 12, Day = 31 },
            From = new Google.Type.Date { Year = 2026, Month = 1, Day = 1 }, To = new Google.Type.Date { Year = 2026, Month = 6, Day = 30 }, StoreId = store,
        });
        Assert.Equal([("RING", "300.00", "250.00", -16.6667), ("EARRING", "50.00", "0.00", -100.0)],
            growth.Skus.Select(s => (s.Sku, s.BaseRevenue.Amount, s.Revenue.Amount, Math.Round(s.GrowthPercent, 4))));

        // Sales read-only: a salesperson may read reports but not customer analytics.
        var sales = new AnalyticsService.AnalyticsServiceClient(suite.Campaigns.ChannelFor(Crm.ServiceDefaults.Security.Roles.Sales));
        Assert.Equal(6, (await sales.GetSalesReportAsync(new GetSalesReportRequest
        {
            From = new Google.Type.Date { Year = 2025, Month = 12, Day = 1 }, To = new Google.Type.Date { Year = 2026, Month = 6, Day = 30 },
            Granularity = Granularity.Month, StoreId = store,
        })).Total.OrderCount);
        var denied = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() =>
            sales.GetCustomerAnalyticsAsync(new GetCustomerAnalyticsRequest { CustomerId = c1 }).ResponseAsync);
        Assert.Equal(Grpc.Core.StatusCode.PermissionDenied, denied.StatusCode);
    }

    [Fact]
    public async Task Models_fitted_through_the_API_give_P_active_CLV_and_quadrants()
    {
        var tag = "fit-" + Guid.NewGuid().ToString("N")[..8];
        var now = DateTime.UtcNow;
        // Repeat buyers with different rhythms (days before now), and one-order customers.
        int[][] histories = [[300, 200, 100, 10], [250, 240], [200, 150, 100, 50, 5], [320], [40], [330, 300, 270]];
        var ids = new List<string>();
        foreach (var days in histories)
        {
            var id = await NewCustomerAsync(tag);
            foreach (var d in days) await PayAsync(id, 800m + d, new DateTimeOffset(now.AddDays(-d)).ToOffset(Shanghai).DateTime);
            ids.Add(id);
        }
        await WaitForAsync(() => _analytics.GetDistributionAsync(new GetDistributionRequest { Kind = DistributionKind.RfmCells, PopulationTag = tag }).ResponseAsync,
            d => d.TotalCount == 6 && d.Buckets.Sum(b => decimal.Parse(b.Revenue.Amount, CultureInfo.InvariantCulture)) > 0, "six buyers");
        await WaitForAsync(() => ProfileAsync(ids[2], tag), p => p.OrderCount == 5, "the five orders of the third customer");

        var fitted = await _analytics.FitModelsAsync(new FitModelsRequest());
        Assert.True(fitted.Fitted);
        Assert.True(fitted.R > 0 && fitted.AlphaDays > 0 && fitted.A > 0 && fitted.B > 0 && fitted.P > 0 && fitted.Q > 0 && fitted.Gamma > 0, fitted.ToString());
        // The fit spans every customer in the database (other tests' too): a log-likelihood of purchase-time densities can be
        // positive when those histories are tight (orders the same day), so only finiteness is a property of it.
        Assert.True(double.IsFinite(fitted.BgnbdLogLikelihood) && fitted.BgnbdCustomers >= 6 && fitted.GammaGammaCustomers >= 4, fitted.ToString());
        Assert.Equal(fitted, await _analytics.GetModelParametersAsync(new GetModelParametersRequest()));

        var regular = await ProfileAsync(ids[2], tag);
        Assert.True(regular.ModelFitted && regular.PActive is > 0 and <= 1 && regular.ExpectedPurchases > 0, regular.ToString());
        Assert.True(decimal.Parse(regular.Clv.Amount, CultureInfo.InvariantCulture) > 0, regular.ToString());
        Assert.Equal("model", regular.ChurnBasis);
        Assert.NotEqual(Quadrant.Unspecified, regular.Quadrant);
        var single = await ProfileAsync(ids[3], tag);
        Assert.Equal(("interval", 1.0), (single.ChurnBasis, single.PActive)); // one order: P(active) = 1 by the model, so churn uses the interval

        var quadrants = await _analytics.GetDistributionAsync(new GetDistributionRequest { Kind = DistributionKind.Quadrants, PopulationTag = tag });
        Assert.Equal(["vip", "growable", "maintain", "abandon"], quadrants.Buckets.Select(b => b.Key));
        Assert.Equal(6, quadrants.TotalCount);
        var ladder = await _analytics.GetDistributionAsync(new GetDistributionRequest { Kind = DistributionKind.Ladder, PopulationTag = tag });
        Assert.Equal(2, ladder.Buckets.Single(b => b.Key == "customer").Count);  // the two one-order customers
        Assert.Equal(3, ladder.Buckets.Single(b => b.Key == "client").Count);    // 2-4 orders
        Assert.Equal(1, ladder.Buckets.Single(b => b.Key == "supporter").Count); // 5 orders over 195 days

        // Who the clients are, two to a page.
        var clients = new ListCustomerAnalyticsRequest { Kind = DistributionKind.Ladder, Bucket = "client", PopulationTag = tag, PageSize = 2 };
        var first = await _analytics.ListCustomerAnalyticsAsync(clients);
        clients.PageToken = first.NextPageToken;
        var second = await _analytics.ListCustomerAnalyticsAsync(clients);
        Assert.Equal((2, 1, ""), (first.Customers.Count, second.Customers.Count, second.NextPageToken));
        Assert.Equal(new[] { ids[0], ids[1], ids[5] }.OrderBy(Guid.Parse), first.Customers.Concat(second.Customers).Select(c => c.CustomerId));
        Assert.All(first.Customers.Concat(second.Customers), c => Assert.Equal("client", c.LadderStage));
    }

    [Fact]
    public async Task Rebuild_from_the_customer_service_gives_the_same_numbers_as_the_incremental_model()
    {
        var tag = "rb-" + Guid.NewGuid().ToString("N")[..8];
        var store = "RB-" + Guid.NewGuid().ToString("N")[..8];
        var ids = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            var id = await NewCustomerAsync(tag);
            await PayAsync(id, 1_200m * (i + 1), new DateTime(2026, 3, 10 + i, 15, 0, 0), store, ("BRACELET", i + 1, 1_200m));
            var second = await PayAsync(id, 700m, new DateTime(2026, 5, 20, 9, 0, 0), store, ("PENDANT", 1, 700m));
            if (i == 1) await RefundAsync(second.Id, 200m);
            ids.Add(id);
        }
        var asOf = Timestamp.FromDateTime(DateTime.UtcNow);
        await WaitForAsync(() => ReportAsync(store, Granularity.Month), r => r.Total.OrderCount == 6 && r.Total.Total.Amount == "9100.00",
            "the six orders net of the refund");
        var incremental = new List<CustomerAnalytics>();
        foreach (var id in ids) incremental.Add(Deterministic(await ProfileAsync(id, tag, asOf)));
        var report = await ReportAsync(store, Granularity.Month);

        // Damage: the read model loses these customers and their orders altogether.
        await using (var db = await suite.CampaignsDb.OpenConnectionAsync())
        {
            var guids = ids.Select(Guid.Parse).ToArray();
            await db.ExecuteAsync("""
                DELETE FROM order_lines WHERE order_id IN (SELECT order_id FROM orders WHERE customer_id = ANY (@guids));
                DELETE FROM orders WHERE customer_id = ANY (@guids);
                DELETE FROM customers WHERE customer_id = ANY (@guids);
                """, new { guids });
        }
        var missing = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() => ProfileAsync(ids[0], tag));
        Assert.Equal(Grpc.Core.StatusCode.NotFound, missing.StatusCode);

        var previous = (await _admin.GetRebuildStatusAsync(new GetRebuildStatusRequest())).Run;
        var started = await _admin.StartRebuildAsync(new StartRebuildRequest());
        Assert.True(started.Run > previous);
        var done = await WaitForAsync(() => _admin.GetRebuildStatusAsync(new GetRebuildStatusRequest()).ResponseAsync,
            s => s.Run >= started.Run && s.State is RebuildState.Succeeded or RebuildState.Failed, "the rebuild", 60);
        Assert.True(done.State == RebuildState.Succeeded, done.ToString());
        Assert.True(done.Customers >= 3 && done.Orders >= 6, done.ToString());

        for (var i = 0; i < ids.Count; i++)
            Assert.Equal(incremental[i], Deterministic(await ProfileAsync(ids[i], tag, asOf)));
        Assert.Equal(report, await ReportAsync(store, Granularity.Month));

        // And incremental again afterwards.
        await PayAsync(ids[0], 300m, new DateTime(2026, 6, 1, 12, 0, 0), store);
        await WaitForAsync(() => ReportAsync(store, Granularity.Month), r => r.Total.OrderCount == 7 && r.Total.Total.Amount == "9400.00",
            "an order after the rebuild");

        // Only the admin runs rebuilds.
        var denied = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() => _analytics.StartRebuildAsync(new StartRebuildRequest()).ResponseAsync);
        Assert.Equal(Grpc.Core.StatusCode.PermissionDenied, denied.StatusCode);
    }

    /// <summary>The profile without what depends on the latest model fit (another test may refit meanwhile) or on loyalty's events.</summary>
    private static CustomerAnalytics Deterministic(CustomerAnalytics p)
    {
        var copy = p.Clone();
        copy.ModelFitted = false;
        copy.PActive = 0;
        copy.ExpectedPurchases = 0;
        copy.ExpectedOrderValue = null;
        copy.Clv = null;
        copy.Quadrant = Quadrant.Unspecified;
        copy.ChurnRisk = ChurnRisk.Unspecified;
        copy.ChurnBasis = "";
        copy.Tier = "";
        copy.PointsBalance = 0;
        return copy;
    }
}
