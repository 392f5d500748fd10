using Crm.IntegrationTests.Support;
using Crm.ServiceDefaults.Paging;
using Grpc.Core;
using CustomerApi = Crm.Customer.V1;
using LoyaltyApi = Crm.Loyalty.V1;

namespace Crm.IntegrationTests.Platform;

/// <summary>The read and paging RPCs not covered elsewhere: malformed ids, page sizes and tokens, unknown resources.</summary>
[Collection(SuiteCollection.Name)]
public class BadInputTests(SuiteFixture suite)
{
    private readonly CustomerApi.CustomerService.CustomerServiceClient _customers = new(suite.Customer.Channel);
    private readonly LoyaltyApi.LoyaltyService.LoyaltyServiceClient _loyalty = new(suite.Loyalty.Channel);

    [Fact]
    public async Task Customer_reads_reject_malformed_ids_sizes_and_tokens()
    {
        Assert.Equal(["id"], (await Rpc.FailsWith(StatusCode.InvalidArgument, () =>
            _customers.GetOrderAsync(new CustomerApi.GetOrderRequest { Id = "order-1" }).ResponseAsync)).Fields());
        await Rpc.FailsWith(StatusCode.NotFound, () =>
            _customers.GetOrderAsync(new CustomerApi.GetOrderRequest { Id = Guid.NewGuid().ToString() }).ResponseAsync);

        Assert.Equal(["customer_id", "page_size"], (await Rpc.FailsWith(StatusCode.InvalidArgument, () =>
            _customers.ListOrdersAsync(new CustomerApi.ListOrdersRequest { CustomerId = "", PageSize = 500 }).ResponseAsync)).Fields());
        await Rpc.FailsWith(StatusCode.NotFound, () =>
            _customers.ListOrdersAsync(new CustomerApi.ListOrdersRequest { CustomerId = Guid.NewGuid().ToString() }).ResponseAsync);

        // A token with the right fingerprint but a key that is not one of ours.
        var customerId = Guid.NewGuid().ToString();
        var forged = PageToken.Encode("not-a-key", customerId);
        Assert.Equal(["page_token"], (await Rpc.FailsWith(StatusCode.InvalidArgument, () =>
            _customers.ListOrdersAsync(new CustomerApi.ListOrdersRequest { CustomerId = customerId, PageToken = forged }).ResponseAsync)).Fields());

        Assert.Equal(["page_token"], (await Rpc.FailsWith(StatusCode.InvalidArgument, () =>
            _customers.SearchCustomersAsync(new CustomerApi.SearchCustomersRequest { Tag = "vip", PageToken = "%%%" }).ResponseAsync)).Fields());
        Assert.Equal(["email", "phone"], (await Rpc.FailsWith(StatusCode.InvalidArgument, () =>
            _customers.SearchCustomersAsync(new CustomerApi.SearchCustomersRequest { Phone = "12", Email = "x@" }).ResponseAsync)).Fields());
    }

    [Fact]
    public async Task Loyalty_reads_reject_malformed_ids_and_unknown_accounts()
    {
        Assert.Equal(["customer_id"], (await Rpc.FailsWith(StatusCode.InvalidArgument, () =>
            _loyalty.CheckInAsync(new LoyaltyApi.CheckInRequest { CustomerId = "42" }).ResponseAsync)).Fields());
        Assert.Equal(["customer_id", "page_size"], (await Rpc.FailsWith(StatusCode.InvalidArgument, () =>
            _loyalty.ListLedgerAsync(new LoyaltyApi.ListLedgerRequest { CustomerId = "42", PageSize = -1 }).ResponseAsync)).Fields());

        var unknown = Guid.NewGuid().ToString();
        await Rpc.FailsWith(StatusCode.NotFound, () => _loyalty.ListLedgerAsync(new LoyaltyApi.ListLedgerRequest { CustomerId = unknown }).ResponseAsync);
        await Rpc.FailsWith(StatusCode.NotFound, () => _loyalty.VerifyAccountAsync(new LoyaltyApi.VerifyAccountRequest { CustomerId = unknown }).ResponseAsync);
        Assert.Equal(["page_token"], (await Rpc.FailsWith(StatusCode.InvalidArgument, () =>
            _loyalty.ListExpiringPointsAsync(new LoyaltyApi.ListExpiringPointsRequest { WithinDays = 30, PageToken = PageToken.Encode("x", "within=7") }).ResponseAsync)).Fields());
    }
}
