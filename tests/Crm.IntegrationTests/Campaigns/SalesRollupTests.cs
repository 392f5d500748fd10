using System.Globalization;
using Crm.Campaigns.V1;
using Crm.Common.V1;
using Crm.Customer.V1;
using Crm.IntegrationTests.Support;
using Dapper;
using Google.Protobuf.WellKnownTypes;

namespace Crm.IntegrationTests.Campaigns;

/// <summary>
/// The monthly roll-up (sales_customer_months) behind unfiltered reports by month, quarter and year: kept by the read
/// model's order and refund writes, it gives the same numbers as the scan of the orders (a store-filtered report of the
/// same orders, which still scans), a partial refund lowers its month, a full refund takes the order out. The fixture's
/// orders are in months of a year of their own (long past), so the suite's other orders do not move its numbers.
/// </summary>
[Collection(SuiteCollection.Name)]
public class SalesRollupTests(SuiteFixture suite)
{
    private readonly CustomerService.CustomerServiceClient _customers = new(suite.Customer.Channel);
    private readonly AnalyticsService.AnalyticsServiceClient _analytics = new(suite.Campaigns.ChannelFor(Crm.ServiceDefaults.Security.Roles.Marketing));
    private static readonly TimeSpan Shanghai = TimeSpan.FromHours(8);

    private async Task<string> NewCustomerAsync()
    {
        var profile = new CustomerProfile { Name = "陈静", Phone = Customer.CustomerProfileTests.UniquePhone(), Region = "苏州" };
        return (await _customers.CreateCustomerAsync(new CreateCustomerRequest { Profile = profile })).Id;
    }

    private static Money Yuan(decimal amount) => new() { Amount = amount.ToString("0.00", CultureInfo.InvariantCulture) };

    private async Task<Order> PayAsync(string customerId, decimal amount, DateTime paidAtShanghai, string store)
    {
        var request = new RecordOrderRequest
        {
            CustomerId = customerId, ExternalOrderId = "ROLL-" + Guid.NewGuid().ToString("N"), Channel = "store", StoreId = store, AmountPaid = Yuan(amount),
            PaidAt = Timestamp.FromDateTime(new DateTimeOffset(paidAtShanghai, Shanghai).UtcDateTime),
        };
        request.Lines.Add(new OrderLine { Sku = "SILK-SCARF", Quantity = 1, UnitPrice = Yuan(amount) });
        return await _customers.RecordOrderAsync(request);
    }

    private Task<SalesReport> ReportAsync(int year, Granularity granularity, string? store = null) =>
        _analytics.GetSalesReportAsync(new GetSalesReportRequest
        {
            From = new Google.Type.Date { Year = year, Month = 1, Day = 1 }, To = new Google.Type.Date { Year = year, Month = 12, Day = 31 },
            Granularity = granularity, StoreId = store ?? "",
        }).ResponseAsync;

    private static IEnumerable<(string, string, int, string, string, int)> Rows(SalesReport r) =>
        r.Periods.Select(p => (p.Label, p.Total.Amount, p.OrderCount, p.MaxTicket.Amount, p.MinTicket.Amount, p.CustomerCount))
            .Append(("total", r.Total.Total.Amount, r.Total.OrderCount, r.Total.MaxTicket.Amount, r.Total.MinTicket.Amount, r.Total.CustomerCount));

    private static async Task<SalesReport> WaitForAsync(Func<Task<SalesReport>> read, Func<SalesReport, bool> done, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            var value = await read();
            if (done(value)) return value;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"Timed out waiting for {what}; last: {value}");
            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task The_monthly_rollup_matches_the_scan_and_follows_refunds()
    {
        var year = 2000 + Random.Shared.Next(10); // the customer service takes orders from 2000 on
        var store = "ROLL-" + Guid.NewGuid().ToString("N")[..8];
        var (a, b) = (await NewCustomerAsync(), await NewCustomerAsync());
        await PayAsync(a, 100m, new DateTime(year, 1, 31, 23, 30, 0), store); // 23:30 on 31 January brand time: January
        await PayAsync(a, 250m, new DateTime(year, 1, 5, 10, 0, 0), store);
        await PayAsync(b, 80m, new DateTime(year, 2, 1, 0, 30, 0), store);   // 00:30 on 1 February brand time is still 31 January in UTC: February
        var refunded = await PayAsync(b, 400m, new DateTime(year, 3, 15, 12, 0, 0), store);
        var gone = await PayAsync(a, 900m, new DateTime(year, 3, 20, 12, 0, 0), store);

        var y = year.ToString(CultureInfo.InvariantCulture);
        var months = await WaitForAsync(() => ReportAsync(year, Granularity.Month), r => r.Total.OrderCount == 5, "the five orders in the roll-up");
        Assert.Equal([($"{y}-01", "350.00", 2, "250.00", "100.00", 1), ($"{y}-02", "80.00", 1, "80.00", "80.00", 1),
                ($"{y}-03", "1300.00", 2, "900.00", "400.00", 2), ("total", "1730.00", 5, "900.00", "80.00", 2)],
            Rows(months));
        // The same orders through the scan (a store filter is not in the roll-up): the same numbers.
        Assert.Equal(Rows(months), Rows(await ReportAsync(year, Granularity.Month, store)));
        await using (var db = await suite.CampaignsDb.OpenConnectionAsync())
            Assert.Equal(4, await db.ExecuteScalarAsync<int>("""
                SELECT count(*) FROM sales_customer_months WHERE month >= make_date(@year, 1, 1) AND month < make_date(@year + 1, 1, 1)
                """, new { year }));

        // A partial refund lowers March; a full refund takes customer A's March order (and A's March row) out.
        await _customers.RefundOrderAsync(new RefundOrderRequest { RefundId = "RF-" + Guid.NewGuid(), OrderId = refunded.Id, Amount = Yuan(150m) });
        await _customers.RefundOrderAsync(new RefundOrderRequest { RefundId = "RF-" + Guid.NewGuid(), OrderId = gone.Id });
        months = await WaitForAsync(() => ReportAsync(year, Granularity.Month), r => r.Total.OrderCount == 4 && r.Total.Total.Amount == "680.00",
            "both refunds in the roll-up");
        Assert.Equal([($"{y}-01", "350.00", 2, "250.00", "100.00", 1), ($"{y}-02", "80.00", 1, "80.00", "80.00", 1),
                ($"{y}-03", "250.00", 1, "250.00", "250.00", 1), ("total", "680.00", 4, "250.00", "80.00", 2)],
            Rows(months));
        Assert.Equal(Rows(months), Rows(await ReportAsync(year, Granularity.Month, store)));

        // Quarter and year merge a customer's months: B ordered in February and March but counts once in Q1.
        var quarters = await ReportAsync(year, Granularity.Quarter);
        Assert.Equal([($"{y}-Q1", "680.00", 4, "250.00", "80.00", 2), ("total", "680.00", 4, "250.00", "80.00", 2)], Rows(quarters));
        Assert.Equal(Rows(quarters), Rows(await ReportAsync(year, Granularity.Quarter, store)));
        Assert.Equal(Rows(await ReportAsync(year, Granularity.Year, store)), Rows(await ReportAsync(year, Granularity.Year)));
    }
}
