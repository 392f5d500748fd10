using Crm.Campaigns.Marketing;
using Crm.Campaigns.V1;
using Crm.Customer.V1;
using Crm.IntegrationTests.Support;
using Dapper;
using Grpc.Net.Client;
using Microsoft.Extensions.DependencyInjection;

namespace Crm.IntegrationTests.Campaigns;

/// <summary>
/// The customer service is asked for a customer's name only when the template shows {name}: a text without it is sent while
/// the customer service is unreachable, one with it is deferred (never sent with an empty name).
/// </summary>
[Collection(SuiteCollection.Name)]
public class CampaignNameTests(SuiteFixture suite)
{
    private readonly GivingSteps _steps = new(suite);

    [Fact]
    public async Task Only_a_template_with_a_name_needs_the_customer_service()
    {
        var tag = GivingSteps.NewTag();
        var customer = Guid.Parse(await _steps.NewCustomerAsync(tag, consent: true));
        await _steps.WaitForProfilesAsync(customer.ToString());
        var segment = (await _steps.TagSegmentAsync(tag)).SegmentId;
        Task<Campaign> WelcomeAsync(string template) => _steps.RunningAsync(new CreateCampaignRequest
        {
            Name = $"name test {template} {tag}", Kind = CampaignKind.TierWelcome, SegmentId = segment, Channel = CampaignChannel.AppPush,
            Template = template, Schedule = new CampaignSchedule { Kind = ScheduleKind.OnEvent },
        });
        var plain = await WelcomeAsync("欢迎升级为 {tier} 会员");
        var named = await WelcomeAsync("{name}，欢迎升级为 {tier} 会员");

        var services = suite.Campaigns.Services;
        var store = services.GetRequiredService<CampaignStore>();
        using var nowhere = GrpcChannel.ForAddress("http://127.0.0.1:1");
        var dispatcher = ActivatorUtilities.CreateInstance<CampaignDispatcher>(services, new CustomerService.CustomerServiceClient(nowhere));
        var plainRow = await store.RequireAsync(Guid.Parse(plain.CampaignId), CancellationToken.None);
        var namedRow = await store.RequireAsync(Guid.Parse(named.CampaignId), CancellationToken.None);
        Assert.Equal(SendOutcome.Sent, await dispatcher.SendAsync(plainRow, customer, "tier:S2", "S2", CancellationToken.None));
        Assert.Equal(SendOutcome.Deferred, await dispatcher.SendAsync(namedRow, customer, "tier:S2", "S2", CancellationToken.None));

        await using var db = await suite.CampaignsDb.OpenConnectionAsync();
        var messages = (await db.QueryAsync<(Guid Campaign, string Message)>(
            "SELECT campaign_id, message FROM message_log WHERE customer_id = @customer", new { customer })).ToList();
        Assert.Equal([(plainRow.CampaignId, "欢迎升级为 S2 会员")], messages);
        Assert.Equal("deferred", await db.ExecuteScalarAsync<string>(
            "SELECT status FROM campaign_deliveries WHERE campaign_id = @c AND customer_id = @customer", new { c = namedRow.CampaignId, customer }));
    }
}
