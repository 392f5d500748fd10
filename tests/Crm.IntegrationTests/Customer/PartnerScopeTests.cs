using Crm.Common.V1;
using Crm.Customer.V1;
using Crm.IntegrationTests.Support;
using Crm.ServiceDefaults.Security;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;

namespace Crm.IntegrationTests.Customer;

/// <summary>A partner reaches the customers of the systems its token speaks for, and their orders; nothing else.</summary>
[Collection(SuiteCollection.Name)]
public sealed class PartnerScopeTests(SuiteFixture suite)
{
    private CustomerService.CustomerServiceClient PartnerFor(params string[] systems) =>
        new(suite.Customer.ChannelWithToken(TestAuth.Token(Roles.Partner, "partner-" + string.Join('-', systems), systems: systems)));

    private static RecordOrderRequest Order(string externalOrderId) => new()
    {
        ExternalOrderId = externalOrderId, Channel = "online", AmountPaid = new Money { Amount = "520.00" },
        PaidAt = Timestamp.FromDateTime(DateTime.UtcNow.AddMinutes(-3)),
        Lines = { new OrderLine { Sku = "PENDANT-PT-01", Quantity = 1, UnitPrice = new Money { Amount = "520.00" } } },
    };

    [Fact]
    public async Task A_partner_reads_and_refunds_what_its_system_pushed_and_is_refused_everything_of_another_system()
    {
        var erp = PartnerFor("erp");
        var tmall = PartnerFor("tmall");
        var erpId = "SCOPE-" + Guid.NewGuid().ToString("N")[..10];
        var pushed = (await erp.UpsertCustomerAsync(new UpsertCustomerRequest
        {
            Ref = new ExternalRef { System = "erp", Id = erpId },
            Profile = new CustomerProfile { Name = "郭靖", Phone = CustomerProfileTests.UniquePhone(), SourceChannel = "erp" },
        })).Customer;
        var byRef = Order("ERP-SO-" + Guid.NewGuid().ToString("N"));
        byRef.CustomerRef = new ExternalRef { System = "erp", Id = erpId };
        var order = await erp.RecordOrderAsync(byRef);

        // The system that pushed them reads the customer and its orders, and refunds.
        Assert.Equal(pushed.Id, (await erp.GetCustomerAsync(new GetCustomerRequest { Id = pushed.Id })).Id);
        Assert.Equal(order.Id, (await erp.GetOrderAsync(new GetOrderRequest { Id = order.Id })).Id);
        Assert.Equal(order.Id, (await erp.ListOrdersAsync(new ListOrdersRequest { CustomerId = pushed.Id })).Orders.Single().Id);
        var refund = await erp.RefundOrderAsync(new RefundOrderRequest { RefundId = "RF-" + Guid.NewGuid(), OrderId = order.Id, Amount = new Money { Amount = "20.00" } });
        Assert.Equal("20.00", refund.Amount.Amount);

        // Another partner system gets PERMISSION_DENIED for every read and write of it, by id or by erp's ids.
        await Rpc.FailsWith(StatusCode.PermissionDenied, () => tmall.GetCustomerAsync(new GetCustomerRequest { Id = pushed.Id }).ResponseAsync);
        await Rpc.FailsWith(StatusCode.PermissionDenied, () => tmall.GetOrderAsync(new GetOrderRequest { Id = order.Id }).ResponseAsync);
        await Rpc.FailsWith(StatusCode.PermissionDenied, () => tmall.ListOrdersAsync(new ListOrdersRequest { CustomerId = pushed.Id }).ResponseAsync);
        await Rpc.FailsWith(StatusCode.PermissionDenied, () => tmall.RefundOrderAsync(new RefundOrderRequest
        {
            RefundId = "RF-" + Guid.NewGuid(), OrderId = order.Id, Amount = new Money { Amount = "10.00" },
        }).ResponseAsync);
        await Rpc.FailsWith(StatusCode.PermissionDenied, () => tmall.UpdateCustomerAsync(new UpdateCustomerRequest
        {
            Id = pushed.Id, Version = pushed.Version, Profile = new CustomerProfile { City = "杭州" }, UpdateMask = new FieldMask { Paths = { "city" } },
        }).ResponseAsync);
        var overwrite = await Rpc.FailsWith(StatusCode.PermissionDenied, () => tmall.UpsertCustomerAsync(new UpsertCustomerRequest
        {
            Ref = new ExternalRef { System = "ERP", Id = erpId }, Profile = new CustomerProfile { Name = "杨康", Phone = CustomerProfileTests.UniquePhone() },
        }).ResponseAsync);
        Assert.Contains("tmall", overwrite.Status.Detail);
        var foreignRef = Order("TM-" + Guid.NewGuid().ToString("N"));
        foreignRef.CustomerRef = new ExternalRef { System = "erp", Id = erpId };
        await Rpc.FailsWith(StatusCode.PermissionDenied, () => tmall.RecordOrderAsync(foreignRef).ResponseAsync);
        var foreignId = Order("TM-" + Guid.NewGuid().ToString("N"));
        foreignId.CustomerId = pushed.Id;
        await Rpc.FailsWith(StatusCode.PermissionDenied, () => tmall.RecordOrderAsync(foreignId).ResponseAsync);
        // The bulk import keeps to the same rule, item by item: both orders rejected PERMISSION_DENIED, nothing recorded.
        var import = new CustomerImport.CustomerImportClient(suite.Customer.ChannelWithToken(TestAuth.Token(Roles.Partner, "partner-tmall", systems: ["tmall"])));
        var byErpRef = Order("TM-IMP-" + Guid.NewGuid().ToString("N"));
        byErpRef.CustomerRef = new ExternalRef { System = "erp", Id = erpId };
        var byErpId = Order("TM-IMP-" + Guid.NewGuid().ToString("N"));
        byErpId.CustomerId = pushed.Id;
        var statuses = await ImportTests.StreamAsync(import.ImportOrders(),
            [new ImportOrderItem { Line = 1, Order = byErpRef }, new ImportOrderItem { Line = 2, Order = byErpId }]);
        Assert.Equal([(1L, (int)StatusCode.PermissionDenied), (2L, (int)StatusCode.PermissionDenied)],
            statuses.Select(x => (x.Line, x.Outcome == ImportOutcome.Rejected ? x.Error.Code : -1)));
        var customers = await ImportTests.StreamAsync(import.ImportCustomers(), [new ImportCustomerItem
        {
            Line = 1, Customer = new UpsertCustomerRequest { Ref = new ExternalRef { System = "erp", Id = erpId }, Profile = new CustomerProfile { Name = "杨康", Phone = CustomerProfileTests.UniquePhone() } },
        }]);
        Assert.Equal((int)StatusCode.PermissionDenied, customers.Single().Error.Code);

        // An id that does not exist gets the same answer: a partner cannot probe for customers.
        await Rpc.FailsWith(StatusCode.PermissionDenied, () => tmall.GetCustomerAsync(new GetCustomerRequest { Id = Guid.NewGuid().ToString() }).ResponseAsync);

        // Nothing the refused calls tried was written: the customer is unchanged, one order, the one refund.
        var staff = new CustomerService.CustomerServiceClient(suite.Customer.ChannelFor(Roles.Service));
        var after = await staff.GetCustomerAsync(new GetCustomerRequest { Id = pushed.Id });
        Assert.Equal((pushed.Version, pushed.Profile.Name, pushed.Profile.City), (after.Version, after.Profile.Name, after.Profile.City));
        var orders = (await staff.ListOrdersAsync(new ListOrdersRequest { CustomerId = pushed.Id })).Orders;
        Assert.Equal((order.Id, "20.00"), (orders.Single().Id, orders.Single().AmountRefunded.Amount));

        // A partner that speaks for both systems reaches it; a partner token naming no system may not use external ids.
        Assert.Equal(pushed.Id, (await PartnerFor("tmall", "erp").GetCustomerAsync(new GetCustomerRequest { Id = pushed.Id })).Id);
        var none = new CustomerService.CustomerServiceClient(suite.Customer.ChannelWithToken(TestAuth.Token(Roles.Partner, "partner-none", systems: [])));
        await Rpc.FailsWith(StatusCode.PermissionDenied, () => none.UpsertCustomerAsync(new UpsertCustomerRequest
        {
            Ref = new ExternalRef { System = "erp", Id = erpId }, Profile = new CustomerProfile { Name = "郭靖", Phone = CustomerProfileTests.UniquePhone() },
        }).ResponseAsync);
    }
}
