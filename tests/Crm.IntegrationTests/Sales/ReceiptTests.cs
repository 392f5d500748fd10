using Crm.Customer.V1;
using Crm.IntegrationTests.Support;
using Crm.Sales.Opportunities;
using Crm.Sales.V1;
using Dapper;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;

namespace Crm.IntegrationTests.Sales;

[Collection(SuiteCollection.Name)]
public class ReceiptTests(SuiteFixture suite)
{
    [Fact]
    public async Task Two_receipts_completing_a_30000_deal_record_exactly_one_order_in_the_customer_service()
    {
        var rep = new SalesDriver(suite.Sales, suite.Customer);
        var customer = await rep.NewCustomerAsync();
        var deal = await rep.OpportunityAsync(customer, 30_000, "negotiation");
        await Rpc.FailsWith(StatusCode.FailedPrecondition, () => Pay(rep, deal.Id, "R1-" + deal.Id, 10_000)); // not won yet
        await rep.Client.MoveStageAsync(new MoveStageRequest { OpportunityId = deal.Id, Stage = "won", Reason = "design signed" });

        var first = await Pay(rep, deal.Id, "R1-" + deal.Id, 10_000, "wechat_pay");
        Assert.Equal(("10000.00", "20000.00", "none"), (first.Opportunity.Paid.Amount, first.Opportunity.Outstanding.Amount, first.Opportunity.OrderStatus));
        var retried = await Pay(rep, deal.Id, "R1-" + deal.Id, 10_000, "wechat_pay");
        Assert.Equal(("10000.00", "20000.00"), (retried.Opportunity.Paid.Amount, retried.Opportunity.Outstanding.Amount));
        var over = await Rpc.FailsWith(StatusCode.FailedPrecondition, () => Pay(rep, deal.Id, "R2-" + deal.Id, 25_000));
        Assert.Contains("outstanding 20000.00", over.Status.Detail);
        await Rpc.FailsWith(StatusCode.AlreadyExists, () => Pay(rep, deal.Id, "R1-" + deal.Id, 5_000)); // the id names another payment

        var second = await Pay(rep, deal.Id, "R2-" + deal.Id, 20_000, "card");
        Assert.Equal(("30000.00", "0.00"), (second.Opportunity.Paid.Amount, second.Opportunity.Outstanding.Amount));
        Assert.NotEqual("none", second.Opportunity.OrderStatus);

        var recorded = await WaitForOrderAsync(rep, deal.Id);
        var orders = await rep.Customers.ListOrdersAsync(new ListOrdersRequest { CustomerId = customer });
        var order = Assert.Single(orders.Orders);
        Assert.Equal((recorded.OrderId, $"SALES-{deal.Id}", "30000.00", "card+wechat_pay", "sales"),
            (order.Id, order.ExternalOrderId, order.AmountPaid.Amount, order.PaymentMethod, order.Channel));

        // The answer of RecordOrder lost after the customer service recorded it: the row is still pending and the call
        // is made again. The external id makes it the same order.
        await using (var connection = await suite.SalesDb.OpenConnectionAsync())
            await connection.ExecuteAsync("UPDATE opportunities SET order_status = 'pending', order_id = NULL, order_next_attempt = now() WHERE id = @id",
                new { id = Guid.Parse(deal.Id) });
        await suite.Sales.Services.GetRequiredService<OrderRecorder>().RunOnceAsync(CancellationToken.None);
        var again = await WaitForOrderAsync(rep, deal.Id);
        Assert.Equal(recorded.OrderId, again.OrderId);
        Assert.Single((await rep.Customers.ListOrdersAsync(new ListOrdersRequest { CustomerId = customer })).Orders);

        var receipts = await rep.Client.ListReceiptsAsync(new ListReceiptsRequest { OpportunityId = deal.Id });
        Assert.Equal(["10000.00", "20000.00"], receipts.Receipts.Select(r => r.Amount.Amount).Order());
        await Rpc.FailsWith(StatusCode.FailedPrecondition, () => rep.Client.ReopenOpportunityAsync(new ReopenOpportunityRequest
            { OpportunityId = deal.Id, Stage = "negotiation" }).ResponseAsync);
    }

    private static Task<RecordReceiptResponse> Pay(SalesDriver rep, string opportunityId, string receiptId, decimal amount, string method = "cash") =>
        rep.Client.RecordReceiptAsync(new RecordReceiptRequest
        {
            ReceiptId = receiptId, OpportunityId = opportunityId, Amount = SalesDriver.Yuan(amount), Method = method,
            PaidAt = Google.Protobuf.WellKnownTypes.Timestamp.FromDateTime(DateTime.UtcNow.AddMinutes(-1)),
        }).ResponseAsync;

    private static async Task<Opportunity> WaitForOrderAsync(SalesDriver rep, string opportunityId)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            var o = await rep.Client.GetOpportunityAsync(new GetOpportunityRequest { OpportunityId = opportunityId });
            if (o.OrderStatus == "recorded") return o;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"Order of {opportunityId} still {o.OrderStatus}.");
            await Task.Delay(50);
        }
    }
}
