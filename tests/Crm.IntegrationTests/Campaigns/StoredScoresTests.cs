using System.Globalization;
using Crm.Campaigns.V1;
using Crm.Common.V1;
using Crm.Customer.V1;
using Crm.IntegrationTests.Support;
using Dapper;
using Google.Protobuf.WellKnownTypes;

namespace Crm.IntegrationTests.Campaigns;

/// <summary>
/// The stored scores: orders recorded through the customer service reach the campaign service's read model by events, a
/// recompute (RecomputeScores) writes every customer's RFM, group, ladder and churn into customer_scores, and "as of
/// now" reads answer from that run — unchanged by later orders until the next run.
/// </summary>
[Collection(SuiteCollection.Name)]
public class StoredScoresTests(SuiteFixture suite)
{
    private readonly CustomerService.CustomerServiceClient _customers = new(suite.Customer.Channel);
    private readonly AnalyticsService.AnalyticsServiceClient _analytics = new(suite.Campaigns.ChannelFor(Crm.ServiceDefaults.Security.Roles.Marketing));

    private async Task<string> NewCustomerAsync(string tag)
    {
        var profile = new CustomerProfile { Name = "周敏", Phone = Customer.CustomerProfileTests.UniquePhone(), Region = "杭州" };
        profile.Tags.Add(tag);
        return (await _customers.CreateCustomerAsync(new CreateCustomerRequest { Profile = profile })).Id;
    }

    private async Task PayAsync(string customerId, decimal amount, int daysAgo)
    {
        var yuan = new Money { Amount = amount.ToString("0.00", CultureInfo.InvariantCulture) };
        var request = new RecordOrderRequest
        {
            CustomerId = customerId, ExternalOrderId = "STORED-" + Guid.NewGuid().ToString("N"), Channel = "store", AmountPaid = yuan,
            PaidAt = Timestamp.FromDateTime(DateTime.UtcNow.AddDays(-daysAgo).AddMinutes(-5)),
        };
        request.Lines.Add(new OrderLine { Sku = "JADE-BANGLE", Quantity = 1, UnitPrice = yuan });
        await _customers.RecordOrderAsync(request);
    }

    /// <summary>Computed on request over the tag's customers: the read model's live numbers.</summary>
    private async Task WaitForOrdersAsync(string customerId, string tag, int orders)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            try
            {
                var live = await _analytics.GetCustomerAnalyticsAsync(new GetCustomerAnalyticsRequest { CustomerId = customerId, PopulationTag = tag });
                Assert.Equal(0L, live.RecomputeRunId);
                if (live.OrderCount == orders) return;
            }
            catch (Grpc.Core.RpcException e) when (e.StatusCode == Grpc.Core.StatusCode.NotFound) { }
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"{customerId} did not reach {orders} orders in the read model");
            await Task.Delay(50);
        }
    }

    private Task<CustomerAnalytics> StoredAsync(string customerId) =>
        _analytics.GetCustomerAnalyticsAsync(new GetCustomerAnalyticsRequest { CustomerId = customerId }).ResponseAsync;

    private static (int, string, int, int, int, string, string, string) Rfm(CustomerAnalytics p) =>
        (p.OrderCount, p.NetSpend.Amount, p.RecencyScore, p.FrequencyScore, p.MonetaryScore, p.RfmCell, p.RfmGroup, p.LadderStage);

    [Fact]
    public async Task A_recompute_stores_each_customers_RFM_and_as_of_now_reads_come_from_the_stored_run()
    {
        var tag = "stored-" + Guid.NewGuid().ToString("N")[..8];
        var (recent, steady, lapsed) = (await NewCustomerAsync(tag), await NewCustomerAsync(tag), await NewCustomerAsync(tag));
        await PayAsync(recent, 6_000m, 10);     // under a month ago → R 5; one order → F 1; 6,000 average → M 5: "515", new
        await PayAsync(steady, 900m, 200);      // last of three 50 days ago → R 4; F 2 (2-5 orders); average 1,000.00 → M 2 (closed above)
        await PayAsync(steady, 1_100m, 100);
        await PayAsync(steady, 1_000m, 50);
        await PayAsync(lapsed, 700m, 500);      // last order 400 days ago → R 1; two orders → F 2; average 500.00 → M 1: "121", hibernating
        await PayAsync(lapsed, 300m, 400);
        await WaitForOrdersAsync(recent, tag, 1);
        await WaitForOrdersAsync(steady, tag, 3);
        await WaitForOrdersAsync(lapsed, tag, 2);

        var run = await Recompute.RunAsync(_analytics);
        Assert.True(run.Id > 0 && run.Customers >= 3 && run.HorizonDays == 365, run.ToString());

        var r = await StoredAsync(recent);
        var s = await StoredAsync(steady);
        var l = await StoredAsync(lapsed);
        Assert.All(new[] { r, s, l }, p => Assert.Equal((run.Id, run.AsOf), (p.RecomputeRunId, p.AsOf)));
        Assert.Equal((1, "6000.00", 5, 1, 5, "515", "new", "customer"), Rfm(r));
        Assert.Equal((3, "3000.00", 4, 2, 2, "422", "promising", "client"), Rfm(s));
        Assert.Equal((2, "1000.00", 1, 2, 1, "121", "hibernating", "client"), Rfm(l));
        Assert.Equal((3, "3000.00", 3, "3000.00", 50), (s.Orders24M, s.Spend24M.Amount, s.Orders12M, s.Spend12M.Amount, s.DaysSinceLastOrder));
        Assert.Equal((2, 0, "0.00"), (l.Orders24M, l.Orders12M, l.Spend12M.Amount));
        Assert.Equal(0, l.SpendDecile); // nothing spent in the last twelve months: no decile
        Assert.Equal("interval", r.ChurnBasis); // one order: the model says nothing about churn

        // The rows themselves, as the segments query them.
        await using (var db = await suite.CampaignsDb.OpenConnectionAsync())
        {
            var row = await db.QuerySingleAsync<(long RunId, short R, short F, short M, string Cell, string Group, string Ladder)>("""
                SELECT run_id, r, f, m, rfm_cell, rfm_group, ladder_stage FROM customer_scores WHERE customer_id = @id
                """, new { id = Guid.Parse(steady) });
            Assert.Equal((run.Id, (short)4, (short)2, (short)2, "422", "promising", "client"), row);
            Assert.Equal((3, 3000.00m, 50), await db.QuerySingleAsync<(int, decimal, int)>(
                "SELECT orders, net_spend, days_since_last_order FROM customer_scores WHERE customer_id = @id", new { id = Guid.Parse(steady) }));
            Assert.Equal(run.Customers, await db.ExecuteScalarAsync<int>("SELECT count(*) FROM customer_scores WHERE run_id = @id", new { id = run.Id }));
        }

        // A new order reaches the read model at once but the stored scores only with the next run.
        await PayAsync(lapsed, 6_000m, 0);
        await WaitForOrdersAsync(lapsed, tag, 3);
        var stale = await StoredAsync(lapsed);
        Assert.Equal((run.Id, "121"), (stale.RecomputeRunId, stale.RfmCell));

        var next = await Recompute.RunAsync(_analytics);
        Assert.True(next.Id > run.Id);
        var fresh = await StoredAsync(lapsed);
        // Now R 5; three orders → F 2; average (700 + 300 + 6,000) / 3 = 2,333.33 → M 3: "523", promising (R 4-5, F 1-2).
        Assert.Equal((3, "7000.00", 5, 2, 3, "523", "promising", "client"), Rfm(fresh));
        Assert.Equal((next.Id, next.AsOf), (fresh.RecomputeRunId, fresh.AsOf));

        // Distributions of "now" come from the same run: the stored RFM groups count every stored buyer once.
        var groups = await _analytics.GetDistributionAsync(new GetDistributionRequest { Kind = DistributionKind.RfmGroups });
        Assert.Equal(next.AsOf, groups.AsOf);
        await using (var db = await suite.CampaignsDb.OpenConnectionAsync())
            Assert.Equal(await db.ExecuteScalarAsync<int>("SELECT count(*) FROM customer_scores WHERE orders > 0"), groups.TotalCount);
        var promising = new List<string>();
        var page = new ListCustomerAnalyticsRequest { Kind = DistributionKind.RfmGroups, Bucket = "promising", PageSize = 200 };
        do
        {
            var reply = await _analytics.ListCustomerAnalyticsAsync(page);
            Assert.All(reply.Customers, c => Assert.Equal((next.Id, "promising"), (c.RecomputeRunId, c.RfmGroup)));
            promising.AddRange(reply.Customers.Select(c => c.CustomerId));
            page.PageToken = reply.NextPageToken;
        } while (page.PageToken.Length > 0);
        Assert.Contains(steady, promising);
        Assert.Contains(lapsed, promising);
        Assert.DoesNotContain(recent, promising);
        Assert.Equal(groups.Buckets.Single(b => b.Key == "promising").Count, promising.Count);

        // Only marketing and admin recompute.
        var sales = new AnalyticsService.AnalyticsServiceClient(suite.Campaigns.ChannelFor(Crm.ServiceDefaults.Security.Roles.Sales));
        var denied = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() => sales.RecomputeScoresAsync(new RecomputeScoresRequest()).ResponseAsync);
        Assert.Equal(Grpc.Core.StatusCode.PermissionDenied, denied.StatusCode);
    }
}
