using Crm.Common.V1;
using Crm.Customer.V1;
using Crm.IntegrationTests.Support;
using Crm.ServiceDefaults.Security;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;

namespace Crm.IntegrationTests.Customer;

/// <summary>A partner's ERP keeps customers in step by its own ids (UpsertCustomer) and names them, and their orders, by those ids.</summary>
[Collection(SuiteCollection.Name)]
public sealed class PartnerSyncTests(SuiteFixture suite)
{
    private CustomerService.CustomerServiceClient Partner() => new(suite.Customer.ChannelFor(Roles.Partner, "erp-acme"));

    private static ExternalRef Erp(string id) => new() { System = "ERP", Id = id };

    private static CustomerProfile Profile(string phone, string city = "深圳") => new()
    {
        Name = "黄蓉", Phone = phone, City = city, Region = "广东", SourceChannel = "erp", MarketingConsent = true,
    };

    private static string NewId() => "C" + Guid.NewGuid().ToString("N")[..10];

    [Fact]
    public async Task Upsert_modes_create_update_and_an_identical_push_is_unchanged_and_publishes_nothing()
    {
        await using var updates = await EventProbe.StartAsync(suite.Infrastructure.RabbitMq!.AmqpUri, "Crm.Contracts:CustomerUpdated");
        var partner = Partner();
        var erpId = NewId();
        var phone = CustomerProfileTests.UniquePhone();

        // UPDATE_ONLY on an id nobody pushed yet: NOT_FOUND, nothing created.
        await Rpc.FailsWith(StatusCode.NotFound, () => partner.UpsertCustomerAsync(new UpsertCustomerRequest
        {
            Ref = Erp(erpId), Profile = Profile(phone), Mode = UpsertMode.UpdateOnly,
        }).ResponseAsync);

        var created = await partner.UpsertCustomerAsync(new UpsertCustomerRequest { Ref = Erp(erpId), Profile = Profile(phone), Mode = UpsertMode.CreateOnly });
        Assert.Equal(UpsertOutcome.Created, created.Outcome);
        Assert.Equal(("erp", erpId), (created.Customer.ExternalRefs.Single().System, created.Customer.ExternalRefs.Single().Id)); // system stored lower case
        Assert.Equal(1, created.Customer.Version);

        // CREATE_ONLY again: ALREADY_EXISTS naming the customer.
        var again = await Rpc.FailsWith(StatusCode.AlreadyExists, () => partner.UpsertCustomerAsync(new UpsertCustomerRequest
        {
            Ref = Erp(erpId), Profile = Profile(phone), Mode = UpsertMode.CreateOnly,
        }).ResponseAsync);
        Assert.Contains(created.Customer.Id, again.Status.Detail);

        // The same data again: UNCHANGED, same version, no event.
        var same = await partner.UpsertCustomerAsync(new UpsertCustomerRequest { Ref = Erp(erpId), Profile = Profile(phone), Mode = UpsertMode.Upsert });
        Assert.Equal((UpsertOutcome.Unchanged, 1L, created.Customer.Id), (same.Outcome, same.Customer.Version, same.Customer.Id));

        // A real change (the marker): UPDATED, version 2, exactly one event, naming only the city.
        var moved = await partner.UpsertCustomerAsync(new UpsertCustomerRequest { Ref = Erp(erpId), Profile = Profile(phone, city: "广州") });
        Assert.Equal((UpsertOutcome.Updated, 2L, "广州"), (moved.Outcome, moved.Customer.Version, moved.Customer.Profile.City));
        bool Mine(ReceivedEvent e) => e.Message.GetProperty("customer").GetProperty("customerId").GetString() == created.Customer.Id;
        await updates.WaitUntilAsync(() => updates.Received.Any(Mine), TimeSpan.FromSeconds(20), "the CustomerUpdated of the real change");
        var update = Assert.Single(updates.Received, Mine);
        Assert.Equal(["city"], update.Message.GetProperty("changedFields").EnumerateArray().Select(f => f.GetString()));

        // GetCustomer shows the external id; a stale expected version is ABORTED.
        var read = await new CustomerService.CustomerServiceClient(suite.Customer.Channel).GetCustomerAsync(new GetCustomerRequest { Id = created.Customer.Id });
        Assert.Equal($"erp/{erpId}", $"{read.ExternalRefs.Single().System}/{read.ExternalRefs.Single().Id}");
        await Rpc.FailsWith(StatusCode.Aborted, () => partner.UpsertCustomerAsync(new UpsertCustomerRequest
        {
            Ref = Erp(erpId), Profile = Profile(phone, city: "珠海"), ExpectedVersion = 1,
        }).ResponseAsync);
    }

    [Fact]
    public async Task An_update_mask_replaces_only_its_fields_and_bad_input_names_the_field()
    {
        var partner = Partner();
        var erpId = NewId();
        var phone = CustomerProfileTests.UniquePhone();
        await partner.UpsertCustomerAsync(new UpsertCustomerRequest { Ref = Erp(erpId), Profile = Profile(phone) });

        var masked = await partner.UpsertCustomerAsync(new UpsertCustomerRequest
        {
            Ref = Erp(erpId), Profile = new CustomerProfile { City = "杭州" }, UpdateMask = new FieldMask { Paths = { "city" } },
        });
        Assert.Equal((UpsertOutcome.Updated, "杭州", "黄蓉", "广东", true),
            (masked.Outcome, masked.Customer.Profile.City, masked.Customer.Profile.Name, masked.Customer.Profile.Region, masked.Customer.Profile.MarketingConsent));

        var bad = await Rpc.FailsWith(StatusCode.InvalidArgument, () => partner.UpsertCustomerAsync(new UpsertCustomerRequest
        {
            Ref = new ExternalRef { System = "erp/1", Id = "" }, Profile = new CustomerProfile { Name = "x", Phone = "12" },
        }).ResponseAsync);
        Assert.Equal(["profile.phone", "ref.id", "ref.system"], bad.Fields());
    }

    [Fact]
    public async Task Eight_simultaneous_pushes_of_a_new_id_create_one_customer()
    {
        var erpId = NewId();
        var phone = CustomerProfileTests.UniquePhone();
        var results = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() =>
            Partner().UpsertCustomerAsync(new UpsertCustomerRequest { Ref = Erp(erpId), Profile = Profile(phone) }).ResponseAsync)));
        Assert.Single(results.Select(r => r.Customer.Id).Distinct());
        Assert.Equal(1, results.Count(r => r.Outcome == UpsertOutcome.Created));
        Assert.All(results.Where(r => r.Outcome != UpsertOutcome.Created), r => Assert.Equal(UpsertOutcome.Unchanged, r.Outcome));
    }

    [Fact]
    public async Task Orders_and_refunds_name_the_customer_and_the_order_by_the_partners_ids()
    {
        var partner = Partner();
        var erpId = NewId();
        var customer = (await partner.UpsertCustomerAsync(new UpsertCustomerRequest { Ref = Erp(erpId), Profile = Profile(CustomerProfileTests.UniquePhone()) })).Customer;
        var order = new RecordOrderRequest
        {
            CustomerRef = Erp(erpId), ExternalOrderId = "SO-" + Guid.NewGuid().ToString("N")[..12], Channel = "store",
            AmountPaid = new Money { Amount = "2000.00" }, PaidAt = Timestamp.FromDateTime(DateTime.UtcNow.AddMinutes(-1)),
        };
        order.Lines.Add(new OrderLine { Sku = "PENDANT-PT950", Quantity = 1, UnitPrice = new Money { Amount = "2000.00" } });
        var recorded = await partner.RecordOrderAsync(order);
        Assert.Equal(customer.Id, recorded.CustomerId);

        var refund = await partner.RefundOrderAsync(new RefundOrderRequest
        {
            RefundId = "RF-" + Guid.NewGuid().ToString("N")[..12], ExternalOrderId = order.ExternalOrderId, Amount = new Money { Amount = "500.00" },
        });
        Assert.Equal((recorded.Id, "500.00"), (refund.OrderId, refund.OrderAmountRefunded.Amount));

        // Unknown ids are NOT_FOUND; naming both ways at once is INVALID_ARGUMENT; nothing recorded.
        var unknown = order.Clone();
        unknown.CustomerRef = Erp("nobody-" + erpId);
        unknown.ExternalOrderId = "SO-" + Guid.NewGuid().ToString("N")[..12];
        await Rpc.FailsWith(StatusCode.NotFound, () => partner.RecordOrderAsync(unknown).ResponseAsync);
        var both = unknown.Clone();
        both.CustomerRef = Erp(erpId);
        both.CustomerId = customer.Id;
        await Rpc.FailsWith(StatusCode.InvalidArgument, () => partner.RecordOrderAsync(both).ResponseAsync);
        await Rpc.FailsWith(StatusCode.NotFound, () => partner.RefundOrderAsync(new RefundOrderRequest
        {
            RefundId = "RF-" + Guid.NewGuid().ToString("N")[..12], ExternalOrderId = unknown.ExternalOrderId,
        }).ResponseAsync);
        var orders = await new CustomerService.CustomerServiceClient(suite.Customer.Channel).ListOrdersAsync(new ListOrdersRequest { CustomerId = customer.Id });
        Assert.Equal([recorded.Id], orders.Orders.Select(o => o.Id));
    }
}
