using Crm.Campaigns;
using Crm.Campaigns.Marketing;
using Crm.Campaigns.V1;
using Crm.Customer.V1;
using Crm.IntegrationTests.Support;
using Dapper;
using Google.Protobuf.WellKnownTypes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Crm.IntegrationTests.Campaigns;

/// <summary>
/// The weekly cap when Redis loses its counters (restarted without its data: the counter key is gone) and when Redis
/// cannot be reached (the send is deferred, not made unchecked, and the next run of the occurrence makes it).
/// </summary>
[Collection(SuiteCollection.Name)]
public class CampaignCapTests(SuiteFixture suite)
{
    private readonly CustomerService.CustomerServiceClient _customers = new(suite.Customer.Channel);
    private readonly SegmentService.SegmentServiceClient _segments = new(suite.Campaigns.ChannelFor(Crm.ServiceDefaults.Security.Roles.Marketing));
    private readonly CampaignService.CampaignServiceClient _campaigns = new(suite.Campaigns.ChannelFor(Crm.ServiceDefaults.Security.Roles.Marketing));

    private async Task<string> NewCustomerAsync(string tag)
    {
        var profile = new CustomerProfile { Name = "陈静", Phone = Customer.CustomerProfileTests.UniquePhone(), Region = "杭州", MarketingConsent = true };
        profile.Tags.Add(tag);
        return (await _customers.CreateCustomerAsync(new CreateCustomerRequest { Profile = profile })).Id;
    }

    [Fact]
    public async Task The_cap_survives_lost_Redis_counters_and_an_unreachable_Redis_defers_the_send_until_the_next_run()
    {
        var tag = "cap-" + Guid.NewGuid().ToString("N")[..10];
        var (a, b) = (await NewCustomerAsync(tag), await NewCustomerAsync(tag));
        var deadline = DateTime.UtcNow.AddSeconds(30);
        await using (var db = await suite.CampaignsDb.OpenConnectionAsync())
            while (await db.ExecuteScalarAsync<int>("SELECT count(*) FROM customers WHERE customer_id = ANY(@ids) AND region IS NOT NULL",
                       new { ids = new[] { Guid.Parse(a), Guid.Parse(b) } }) < 2)
            {
                Assert.True(DateTime.UtcNow < deadline, "the profiles did not reach the read model");
                await Task.Delay(100);
            }

        var segment = await _segments.CreateSegmentAsync(new CreateSegmentRequest
        {
            Name = "cap audience " + tag, Rules = new SegmentRule { Field = SegmentField.Tags, Op = SegmentOperator.HasAny, Values = { tag } },
        });
        var created = await _campaigns.CreateCampaignAsync(new CreateCampaignRequest
        {
            Name = "new necklace " + tag, Kind = CampaignKind.NewProduct, SegmentId = segment.SegmentId, Channel = CampaignChannel.Wechat,
            Template = "{name}，新品上市", Schedule = new CampaignSchedule { Kind = ScheduleKind.Once, StartAt = Timestamp.FromDateTime(DateTime.UtcNow) },
        });
        var scheduled = await _campaigns.ChangeCampaignStateAsync(new ChangeCampaignStateRequest
            { CampaignId = created.CampaignId, Version = created.Version, State = CampaignState.Scheduled });
        await _campaigns.ChangeCampaignStateAsync(new ChangeCampaignStateRequest
            { CampaignId = created.CampaignId, Version = scheduled.Version, State = CampaignState.Running });

        // Redis unreachable: B's send is deferred and nothing is sent.
        var services = suite.Campaigns.Services;
        var campaign = await services.GetRequiredService<CampaignStore>().RequireAsync(Guid.Parse(created.CampaignId), CancellationToken.None);
        using (var down = await ConnectionMultiplexer.ConnectAsync(new ConfigurationOptions
               {
                   EndPoints = { "127.0.0.1:1" }, AbortOnConnectFail = false, ConnectTimeout = 200, AsyncTimeout = 300, SyncTimeout = 300,
               }))
        {
            var unreachable = new FrequencyCap(down, services.GetRequiredService<IOptions<MarketingOptions>>(),
                services.GetRequiredService<IOptions<CampaignsOptions>>());
            var dispatcher = ActivatorUtilities.CreateInstance<CampaignDispatcher>(services, unreachable);
            Assert.Equal(SendOutcome.Deferred, await dispatcher.SendAsync(campaign, Guid.Parse(b), "r1", null, CancellationToken.None));
        }
        await using (var db = await suite.CampaignsDb.OpenConnectionAsync())
        {
            Assert.Equal("deferred", await db.ExecuteScalarAsync<string>(
                "SELECT status FROM campaign_deliveries WHERE campaign_id = @c AND customer_id = @b", new { c = campaign.CampaignId, b = Guid.Parse(b) }));
            Assert.Equal(0, await db.ExecuteScalarAsync<int>("SELECT count(*) FROM message_log WHERE campaign_id = @c", new { c = campaign.CampaignId }));
        }

        // Redis back: the run of the occurrence sends to A and retries B's deferred send.
        var r1 = await _campaigns.RunCampaignAsync(new RunCampaignRequest { CampaignId = created.CampaignId, Occurrence = "r1" });
        Assert.Equal((2, 0, 0, 0), (r1.Sent, r1.Duplicate, r1.Capped, r1.Deferred));
        var r2 = await _campaigns.RunCampaignAsync(new RunCampaignRequest { CampaignId = created.CampaignId, Occurrence = "r2" });
        Assert.Equal((2, 0), (r2.Sent, r2.Capped));

        // Redis restarts without its data: the counters are gone. Seeded again from the delivery log, they still say 2.
        var cap = services.GetRequiredService<FrequencyCap>();
        var week = cap.Week(DateTime.UtcNow).Start;
        var redis = services.GetRequiredService<IConnectionMultiplexer>().GetDatabase();
        foreach (var id in new[] { a, b }) Assert.True(await redis.KeyDeleteAsync($"campaigns:cap:{Guid.Parse(id):N}:{week:yyyyMMdd}"));
        var r3 = await _campaigns.RunCampaignAsync(new RunCampaignRequest { CampaignId = created.CampaignId, Occurrence = "r3" });
        Assert.Equal((0, 2, 0), (r3.Sent, r3.Capped, r3.Deferred));
        await using (var db = await suite.CampaignsDb.OpenConnectionAsync())
            Assert.Equal(4, await db.ExecuteScalarAsync<int>("SELECT count(*) FROM message_log WHERE campaign_id = @c", new { c = campaign.CampaignId }));
    }
}
