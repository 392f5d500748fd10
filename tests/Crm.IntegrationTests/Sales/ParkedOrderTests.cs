using Crm.Customer.V1;
using Crm.IntegrationTests.Support;
using Crm.Sales.Opportunities;
using Crm.Sales.V1;
using Crm.ServiceDefaults.Security;
using Dapper;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;

namespace Crm.IntegrationTests.Sales;

/// <summary>RetryOrder: an admin puts an order the customer service refused 30 times back in the queue.</summary>
[Collection(SuiteCollection.Name)]
public class ParkedOrderTests(SuiteFixture suite)
{
    [Fact]
    public async Task A_parked_order_retried_by_an_admin_is_recorded_exactly_once_and_a_second_retry_changes_nothing()
    {
        var rep = new SalesDriver(suite.Sales, suite.Customer);
        var admin = new SalesService.SalesServiceClient(suite.Sales.Channel);
        var customer = await rep.NewCustomerAsync();
        var deal = await rep.OpportunityAsync(customer, 18_800, "negotiation");
        await rep.Client.MoveStageAsync(new MoveStageRequest { OpportunityId = deal.Id, Stage = "won", Reason = "pendant approved" });
        var id = Guid.Parse(deal.Id);
        await using var connection = await suite.SalesDb.OpenConnectionAsync();

        // Nothing is owed yet: not paid, so there is no order to retry.
        var unpaid = await Rpc.FailsWith(StatusCode.FailedPrecondition, () => admin.RetryOrderAsync(new RetryOrderRequest { OpportunityId = deal.Id }).ResponseAsync);
        Assert.Contains("order status 'none'", unpaid.Status.Detail);

        // Park it by real refusals: the customer service answers NOT_FOUND for an unknown customer on every attempt.
        await connection.ExecuteAsync("UPDATE opportunities SET customer_id = @unknown WHERE id = @id", new { id, unknown = Guid.NewGuid() });
        await rep.Client.RecordReceiptAsync(new RecordReceiptRequest
        {
            ReceiptId = "R1-" + deal.Id, OpportunityId = deal.Id, Amount = SalesDriver.Yuan(18_800), Method = "transfer",
            PaidAt = Google.Protobuf.WellKnownTypes.Timestamp.FromDateTime(DateTime.UtcNow.AddMinutes(-1)),
        });
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (await connection.QuerySingleAsync<bool>("""
                   SELECT order_last_error IS NULL OR order_next_attempt > now() + interval '30 seconds' FROM opportunities WHERE id = @id
                   """, new { id }))
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("The recorder never tried the order.");
            await Task.Delay(50);
        }
        await connection.ExecuteAsync("UPDATE opportunities SET order_attempts = 29, order_next_attempt = now() WHERE id = @id AND order_status = 'pending'", new { id });
        await suite.Sales.Services.GetRequiredService<OrderRecorder>().RunOnceAsync(CancellationToken.None);
        await WaitForOrderStatusAsync(admin, deal.Id, "parked");

        // Listed as parked for the operator; only admin may retry it.
        var parked = await admin.ListOpportunitiesAsync(new ListOpportunitiesRequest { OrderStatus = "parked", PageSize = 100 });
        Assert.Contains(parked.Opportunities, o => o.Id == deal.Id);
        Assert.All(parked.Opportunities, o => Assert.Equal("parked", o.OrderStatus));
        var badStatus = await Rpc.FailsWith(StatusCode.InvalidArgument, () => admin.ListOpportunitiesAsync(new ListOpportunitiesRequest { OrderStatus = "stuck" }).ResponseAsync);
        Assert.Equal(["order_status"], badStatus.Fields());
        await Rpc.FailsWith(StatusCode.PermissionDenied, () => rep.Client.RetryOrderAsync(new RetryOrderRequest { OpportunityId = deal.Id }).ResponseAsync);
        var manager = new SalesDriver(suite.Sales, suite.Customer, role: Roles.SalesManager);
        await Rpc.FailsWith(StatusCode.PermissionDenied, () => manager.Client.RetryOrderAsync(new RetryOrderRequest { OpportunityId = deal.Id }).ResponseAsync);
        var malformed = await Rpc.FailsWith(StatusCode.InvalidArgument, () => admin.RetryOrderAsync(new RetryOrderRequest { OpportunityId = "SALES-42" }).ResponseAsync);
        Assert.Equal(["opportunity_id"], malformed.Fields());
        await Rpc.FailsWith(StatusCode.NotFound, () => admin.RetryOrderAsync(new RetryOrderRequest { OpportunityId = Guid.NewGuid().ToString() }).ResponseAsync);
        Assert.Equal((30, "parked"), await connection.QuerySingleAsync<(int, string)>("SELECT order_attempts, order_status FROM opportunities WHERE id = @id", new { id }));

        // The cause fixed (the customer is right again), the admin retries: attempts start over and the order is recorded once.
        await connection.ExecuteAsync("UPDATE opportunities SET customer_id = @customer WHERE id = @id", new { id, customer = Guid.Parse(customer) });
        var retried = await admin.RetryOrderAsync(new RetryOrderRequest { OpportunityId = deal.Id });
        Assert.Equal((deal.Id, "pending"), (retried.Id, retried.OrderStatus));
        var recorded = await WaitForOrderStatusAsync(admin, deal.Id, "recorded");
        var order = Assert.Single((await rep.Customers.ListOrdersAsync(new ListOrdersRequest { CustomerId = customer })).Orders);
        Assert.Equal((recorded.OrderId, $"SALES-{id}", "18800.00", "transfer"), (order.Id, order.ExternalOrderId, order.AmountPaid.Amount, order.PaymentMethod));
        Assert.Equal(1, await connection.QuerySingleAsync<int>("SELECT order_attempts FROM opportunities WHERE id = @id", new { id }));

        // A second retry (a double click, a retried call) answers with the recorded order and writes nothing.
        var again = await admin.RetryOrderAsync(new RetryOrderRequest { OpportunityId = deal.Id });
        Assert.Equal(("recorded", recorded.OrderId, recorded.Version), (again.OrderStatus, again.OrderId, again.Version));
        await suite.Sales.Services.GetRequiredService<OrderRecorder>().RunOnceAsync(CancellationToken.None);
        Assert.Single((await rep.Customers.ListOrdersAsync(new ListOrdersRequest { CustomerId = customer })).Orders);
        Assert.Equal(["OK"], await connection.QueryAsync<string>(
            "SELECT outcome FROM audit_events WHERE target_id = @target AND rpc LIKE '%/RetryOrder'", new { target = deal.Id }));
    }

    private static async Task<Opportunity> WaitForOrderStatusAsync(SalesService.SalesServiceClient client, string opportunityId, string status)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            var o = await client.GetOpportunityAsync(new GetOpportunityRequest { OpportunityId = opportunityId });
            if (o.OrderStatus == status) return o;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"Order of {opportunityId} still {o.OrderStatus}.");
            await Task.Delay(50);
        }
    }
}
