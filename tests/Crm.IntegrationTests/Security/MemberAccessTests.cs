using Crm.Common.V1;
using Crm.Customer.V1;
using Crm.IntegrationTests.Loyalty;
using Crm.IntegrationTests.Support;
using Crm.Loyalty.V1;
using Crm.ServiceDefaults.Security;
using Grpc.Core;

namespace Crm.IntegrationTests.Security;

/// <summary>A member token acts for its own customer id only, and member calls never open accounts.</summary>
[Collection(SuiteCollection.Name)]
public sealed class MemberAccessTests(SuiteFixture suite)
{
    private readonly LoyaltyService.LoyaltyServiceClient _admin = new(suite.Loyalty.Channel);
    private readonly Shoppers _shoppers = new(new CustomerService.CustomerServiceClient(suite.Customer.Channel), new LoyaltyService.LoyaltyServiceClient(suite.Loyalty.Channel));

    private LoyaltyService.LoyaltyServiceClient LoyaltyAs(string role, string? subject = null) => new(suite.Loyalty.ChannelFor(role, subject));

    private static string Key() => Guid.NewGuid().ToString("N");

    [Fact]
    public async Task A_member_reads_and_spends_its_own_points_and_nothing_of_another_members()
    {
        var me = await _shoppers.WithOrderPointsAsync(500);
        var other = await _shoppers.WithOrderPointsAsync(500);
        var reward = await _admin.UpsertRewardAsync(new UpsertRewardRequest
        {
            Reward = new Reward { Id = "auth-" + Key()[..12], Name = "Polishing cloth", Kind = RewardKind.Goods, PointsCost = 100, Stock = -1, Active = true },
        });
        var loyalty = LoyaltyAs(Roles.Member, me);
        var customers = new CustomerService.CustomerServiceClient(suite.Customer.ChannelFor(Roles.Member, me));

        // Its own data: read, spend.
        Assert.Equal(500, (await loyalty.GetAccountAsync(new GetAccountRequest { CustomerId = me })).Balance);
        Assert.NotEmpty((await loyalty.ListLedgerAsync(new ListLedgerRequest { CustomerId = me })).Entries);
        Assert.Equal(me, (await customers.GetCustomerAsync(new GetCustomerRequest { Id = me })).Id);
        await loyalty.RedeemAsync(new RedeemRequest { CustomerId = me, RewardId = reward.Id, IdempotencyKey = Key() });
        Assert.Equal(400, (await loyalty.GetAccountAsync(new GetAccountRequest { CustomerId = me })).Balance);

        // Another member's: PERMISSION_DENIED, whether it reads or spends.
        await Denied(() => loyalty.GetAccountAsync(new GetAccountRequest { CustomerId = other }).ResponseAsync);
        await Denied(() => loyalty.ListLedgerAsync(new ListLedgerRequest { CustomerId = other }).ResponseAsync);
        await Denied(() => loyalty.RedeemAsync(new RedeemRequest { CustomerId = other, RewardId = reward.Id, IdempotencyKey = Key() }).ResponseAsync);
        await Denied(() => loyalty.DrawAsync(new DrawRequest { CustomerId = other, RewardId = reward.Id, IdempotencyKey = Key() }).ResponseAsync);
        await Denied(() => loyalty.CheckInAsync(new CheckInRequest { CustomerId = other }).ResponseAsync);
        await Denied(() => loyalty.RegisterActivityAsync(new RegisterActivityRequest { CustomerId = other, Type = ActivityType.ProfileCompletion }).ResponseAsync);
        await Denied(() => loyalty.ListRewardsAsync(new ListRewardsRequest { CustomerId = other }).ResponseAsync);
        await Denied(() => loyalty.ValidateCouponAsync(new ValidateCouponRequest { Code = "ANY", OrderAmount = new Money { Amount = "10.00" }, CustomerId = other }).ResponseAsync);
        await Denied(() => loyalty.ValidateCouponAsync(new ValidateCouponRequest { Code = "ANY", OrderAmount = new Money { Amount = "10.00" } }).ResponseAsync);
        await Denied(() => customers.GetCustomerAsync(new GetCustomerRequest { Id = other }).ResponseAsync);
        // Its own orders, not another's (by customer or by order id).
        var myOrder = Assert.Single((await customers.ListOrdersAsync(new ListOrdersRequest { CustomerId = me })).Orders);
        Assert.Equal(me, (await customers.GetOrderAsync(new GetOrderRequest { Id = myOrder.Id })).CustomerId);
        var staff = new CustomerService.CustomerServiceClient(suite.Customer.Channel);
        var otherOrder = Assert.Single((await staff.ListOrdersAsync(new ListOrdersRequest { CustomerId = other })).Orders);
        await Denied(() => customers.ListOrdersAsync(new ListOrdersRequest { CustomerId = other }).ResponseAsync);
        await Denied(() => customers.GetOrderAsync(new GetOrderRequest { Id = otherOrder.Id }).ResponseAsync);
        // A member's id it does not know exists is denied the same way: no existence leak.
        await Denied(() => loyalty.GetAccountAsync(new GetAccountRequest { CustomerId = Guid.NewGuid().ToString() }).ResponseAsync);
        // Staff-only calls, even on itself.
        await Denied(() => loyalty.AdjustPointsAsync(new AdjustPointsRequest { CustomerId = me, Points = 10_000_000, Reason = "free points", IdempotencyKey = Key() }).ResponseAsync);
        await Denied(() => customers.SearchCustomersAsync(new SearchCustomersRequest { Name = "王" }).ResponseAsync);

        var untouched = await _admin.GetAccountAsync(new GetAccountRequest { CustomerId = other });
        Assert.Equal(500, untouched.Balance);
        Assert.Equal(400, (await _admin.GetAccountAsync(new GetAccountRequest { CustomerId = me })).Balance);
    }

    [Fact]
    public async Task Member_calls_do_not_open_accounts_for_ids_loyalty_has_never_heard_of_but_an_operator_may()
    {
        var invented = Guid.NewGuid().ToString();
        var member = LoyaltyAs(Roles.Member, invented);

        await Support.Rpc.FailsWith(StatusCode.NotFound, () => member.CheckInAsync(new CheckInRequest { CustomerId = invented }).ResponseAsync);
        await Support.Rpc.FailsWith(StatusCode.NotFound, () => member.RegisterActivityAsync(new RegisterActivityRequest { CustomerId = invented, Type = ActivityType.ProfileCompletion }).ResponseAsync);
        await Support.Rpc.FailsWith(StatusCode.NotFound, () => member.RedeemAsync(new RedeemRequest { CustomerId = invented, RewardId = "no-such-reward", IdempotencyKey = Key() }).ResponseAsync);
        await Support.Rpc.FailsWith(StatusCode.NotFound, () => member.GetAccountAsync(new GetAccountRequest { CustomerId = invented }).ResponseAsync);
        await using (var db = suite.LoyaltyDb.CreateConnection())
        {
            await db.OpenAsync();
            await using var count = new Npgsql.NpgsqlCommand("SELECT count(*) FROM accounts WHERE customer_id = @id", db);
            count.Parameters.AddWithValue("id", Guid.Parse(invented));
            Assert.Equal(0L, (long)(await count.ExecuteScalarAsync())!);
        }

        // An operator opens it explicitly (idempotent); then the member app works.
        var opened = await LoyaltyAs(Roles.Service).OpenAccountAsync(new OpenAccountRequest { CustomerId = invented });
        Assert.Equal((invented, 0L), (opened.CustomerId, opened.Balance));
        await LoyaltyAs(Roles.Service).OpenAccountAsync(new OpenAccountRequest { CustomerId = invented });
        await Denied(() => member.OpenAccountAsync(new OpenAccountRequest { CustomerId = invented }).ResponseAsync);
        var checkIn = await member.CheckInAsync(new CheckInRequest { CustomerId = invented });
        Assert.True(checkIn.Entry.Points > 0);
    }

    private static Task Denied(Func<Task> call) => Support.Rpc.FailsWith(StatusCode.PermissionDenied, call);
}
