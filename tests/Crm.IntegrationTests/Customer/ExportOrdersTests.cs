using Crm.Common.V1;
using Crm.Customer.V1;
using Crm.IntegrationTests.Support;
using Crm.ServiceDefaults.Security;
using Google.Protobuf.WellKnownTypes;

namespace Crm.IntegrationTests.Customer;

/// <summary>ExportOrders: every order with its refund total, paged by id, for another service's rebuild (role system only).</summary>
[Collection(SuiteCollection.Name)]
public class ExportOrdersTests(SuiteFixture suite)
{
    [Fact]
    public async Task Pages_through_every_order_once_with_refund_totals_and_only_for_system_callers()
    {
        var customers = new CustomerService.CustomerServiceClient(suite.Customer.Channel);
        var customer = await customers.CreateCustomerAsync(new CreateCustomerRequest
        {
            Profile = new CustomerProfile { Name = "周敏", Phone = CustomerProfileTests.UniquePhone() },
        });
        var recorded = new List<Order>();
        foreach (var amount in new[] { "120.00", "80.00", "300.00" })
        {
            var request = new RecordOrderRequest
            {
                CustomerId = customer.Id, ExternalOrderId = "EXP-" + Guid.NewGuid().ToString("N"), Channel = "web",
                AmountPaid = new Money { Amount = amount }, PaidAt = Timestamp.FromDateTime(DateTime.UtcNow.AddHours(-1)),
            };
            request.Lines.Add(new OrderLine { Sku = "EXP-SKU", Quantity = 1, UnitPrice = new Money { Amount = amount } });
            recorded.Add(await customers.RecordOrderAsync(request));
        }
        await customers.RefundOrderAsync(new RefundOrderRequest { RefundId = "RF-" + Guid.NewGuid(), OrderId = recorded[2].Id, Amount = new Money { Amount = "50.00" } });

        var system = new CustomerService.CustomerServiceClient(suite.Customer.ChannelFor(Roles.System, "campaigns"));
        var seen = new List<Order>();
        var token = "";
        var pages = 0;
        do
        {
            var page = await system.ExportOrdersAsync(new ExportOrdersRequest { PageSize = 2, PageToken = token });
            Assert.True(page.Orders.Count <= 2);
            seen.AddRange(page.Orders);
            token = page.NextPageToken;
            pages++;
        } while (token.Length > 0);

        Assert.True(pages >= 2);
        Assert.Equal(seen.Count, seen.Select(o => o.Id).Distinct().Count());
        var mine = seen.Where(o => o.CustomerId == customer.Id).ToDictionary(o => o.Id);
        Assert.Equal(3, mine.Count);
        Assert.Equal(("300.00", "50.00", OrderStatus.PartiallyRefunded), (mine[recorded[2].Id].AmountPaid.Amount, mine[recorded[2].Id].AmountRefunded.Amount,
            mine[recorded[2].Id].Status));

        var marketing = new CustomerService.CustomerServiceClient(suite.Customer.ChannelFor(Roles.Marketing));
        var denied = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() => marketing.ExportOrdersAsync(new ExportOrdersRequest()).ResponseAsync);
        Assert.Equal(Grpc.Core.StatusCode.PermissionDenied, denied.StatusCode);
    }
}
