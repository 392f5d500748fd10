using Crm.IntegrationTests.Support;
using Crm.Loyalty.V1;
using Crm.ServiceDefaults.Security;
using Grpc.Core;

namespace Crm.IntegrationTests.Security;

/// <summary>Per-caller budgets (the tests give members 5/s, burst 30): past it RESOURCE_EXHAUSTED with RetryInfo, then recovery.</summary>
[Collection(SuiteCollection.Name)]
public sealed class RateLimitTests(SuiteFixture suite)
{
    [Fact]
    public async Task A_member_past_its_budget_gets_RESOURCE_EXHAUSTED_with_retry_info_and_recovers_after_the_window()
    {
        var member = new LoyaltyService.LoyaltyServiceClient(suite.Loyalty.ChannelFor(Roles.Member, Guid.NewGuid().ToString()));
        RpcException? limited = null;
        var ok = 0;
        for (var i = 0; i < 80 && limited is null; i++)
        {
            try { await member.ListRewardsAsync(new ListRewardsRequest { PageSize = 1 }); ok++; }
            catch (RpcException ex) when (ex.StatusCode == StatusCode.ResourceExhausted) { limited = ex; }
        }
        Assert.NotNull(limited);
        Assert.InRange(ok, 30, 60);
        var retry = limited!.GetRpcStatus()?.GetDetail<Google.Rpc.RetryInfo>();
        Assert.NotNull(retry);
        Assert.InRange(retry!.RetryDelay.ToTimeSpan(), TimeSpan.Zero, TimeSpan.FromSeconds(2));

        // Another member and staff are not affected.
        await new LoyaltyService.LoyaltyServiceClient(suite.Loyalty.ChannelFor(Roles.Member, Guid.NewGuid().ToString())).ListRewardsAsync(new ListRewardsRequest { PageSize = 1 });
        await new LoyaltyService.LoyaltyServiceClient(suite.Loyalty.Channel).ListRewardsAsync(new ListRewardsRequest { PageSize = 1 });

        await Task.Delay(retry.RetryDelay.ToTimeSpan() + TimeSpan.FromMilliseconds(300));
        await member.ListRewardsAsync(new ListRewardsRequest { PageSize = 1 });
    }
}
