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

    [Fact]
    public async Task An_order_the_customer_service_refuses_30_times_is_parked_with_an_error_log_and_not_retried()
    {
        var rep = new SalesDriver(suite.Sales, suite.Customer);
        var customer = await rep.NewCustomerAsync();
        var deal = await rep.OpportunityAsync(customer, 12_000, "negotiation");
        await rep.Client.MoveStageAsync(new MoveStageRequest { OpportunityId = deal.Id, Stage = "won", Reason = "ring delivered" });
        var id = Guid.Parse(deal.Id);
        var unknownCustomer = Guid.NewGuid(); // the customer service answers NOT_FOUND for it, however often it is asked
        await using var connection = await suite.SalesDb.OpenConnectionAsync();
        await connection.ExecuteAsync("UPDATE opportunities SET customer_id = @unknownCustomer WHERE id = @id", new { id, unknownCustomer });
        Assert.Equal("pending", (await Pay(rep, deal.Id, "R1-" + deal.Id, 12_000, "card")).Opportunity.OrderStatus);

        // The background recorder tries at once and fails; wait until that attempt is written back (not merely leased),
        // so no call is in flight, then put the row one failure short of the limit.
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (await connection.QuerySingleAsync<bool>("""
                   SELECT order_last_error IS NULL OR order_next_attempt > now() + interval '30 seconds' FROM opportunities WHERE id = @id
                   """, new { id }))
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("The recorder never tried the order.");
            await Task.Delay(50);
        }
        Assert.StartsWith("NotFound:", await connection.QuerySingleAsync<string>("SELECT order_last_error FROM opportunities WHERE id = @id", new { id }));
        await connection.ExecuteAsync("UPDATE opportunities SET order_attempts = 29, order_next_attempt = now() WHERE id = @id AND order_status = 'pending'", new { id });

        var recorder = suite.Sales.Services.GetRequiredService<OrderRecorder>();
        await recorder.RunOnceAsync(CancellationToken.None); // the 30th attempt (here or in the background loop, whichever claims it)
        var parked = await WaitForOrderStatusAsync(rep, deal.Id, "parked");
        Assert.Equal(("parked", ""), (parked.OrderStatus, parked.OrderId));
        var row = await connection.QuerySingleAsync<(int Attempts, string Error, DateTime? Next)>(
            "SELECT order_attempts, order_last_error, order_next_attempt FROM opportunities WHERE id = @id", new { id });
        Assert.Equal((30, (DateTime?)null), (row.Attempts, row.Next));
        Assert.StartsWith("NotFound:", row.Error);

        var log = Assert.Single(LogCapture.Instance.Lines, l => l.Contains($"Order for opportunity {id}") && l.Contains("parked"));
        Assert.StartsWith("Error", log);
        Assert.Contains($"customer {unknownCustomer}", log);
        Assert.Contains($"external order id SALES-{id}", log);
        Assert.Contains("after 30 failed RecordOrder calls", log);
        Assert.Contains($"UPDATE opportunities SET order_status = 'pending', order_attempts = 0, order_next_attempt = now() WHERE id = '{id}'", log);

        // A parked order is not claimed again: a full recorder round later it still has 30 attempts.
        await recorder.RunOnceAsync(CancellationToken.None);
        Assert.Equal((30, "parked"), await connection.QuerySingleAsync<(int, string)>(
            "SELECT order_attempts, order_status FROM opportunities WHERE id = @id", new { id }));

        // The operator's retry from the log, once the customer is right again, records the order exactly once.
        await connection.ExecuteAsync("UPDATE opportunities SET customer_id = @customer WHERE id = @id", new { id, customer = Guid.Parse(customer) });
        await connection.ExecuteAsync("UPDATE opportunities SET order_status = 'pending', order_attempts = 0, order_next_attempt = now() WHERE id = @id", new { id });
        var recorded = await WaitForOrderStatusAsync(rep, deal.Id, "recorded");
        var order = Assert.Single((await rep.Customers.ListOrdersAsync(new ListOrdersRequest { CustomerId = customer })).Orders);
        Assert.Equal((recorded.OrderId, $"SALES-{id}", "12000.00"), (order.Id, order.ExternalOrderId, order.AmountPaid.Amount));
    }

    private static Task<RecordReceiptResponse> Pay(SalesDriver rep, string opportunityId, string receiptId, decimal amount, string method = "cash") =>
        rep.Client.RecordReceiptAsync(new RecordReceiptRequest
        {
            ReceiptId = receiptId, OpportunityId = opportunityId, Amount = SalesDriver.Yuan(amount), Method = method,
            PaidAt = Google.Protobuf.WellKnownTypes.Timestamp.FromDateTime(DateTime.UtcNow.AddMinutes(-1)),
        }).ResponseAsync;

    private static Task<Opportunity> WaitForOrderAsync(SalesDriver rep, string opportunityId) => WaitForOrderStatusAsync(rep, opportunityId, "recorded");

    private static async Task<Opportunity> WaitForOrderStatusAsync(SalesDriver rep, string opportunityId, string status)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            var o = await rep.Client.GetOpportunityAsync(new GetOpportunityRequest { OpportunityId = opportunityId });
            if (o.OrderStatus == status) return o;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"Order of {opportunityId} still {o.OrderStatus}.");
            await Task.Delay(50);
        }
    }
}
