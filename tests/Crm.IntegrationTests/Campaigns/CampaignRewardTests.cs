using System.Text.Json;
using Crm.Campaigns.Marketing;
using Crm.Campaigns.V1;
using Crm.Common.V1;
using Crm.Contracts;
using Crm.Customer.V1;
using Crm.IntegrationTests.Loyalty;
using Crm.IntegrationTests.Support;
using Crm.Loyalty.V1;
using Crm.ServiceDefaults.Security;
using Dapper;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Grpc.Net.Client;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Crm.IntegrationTests.Campaigns;

/// <summary>
/// A campaign's coupon through the real loyalty service: issued once per delivery however often the trigger arrives,
/// rendered into the message, never a message without it (loyalty refusing or unreachable defers the send), never two;
/// the control group held out stably, without message or coupon; invalid giving settings named by field.
/// </summary>
[Collection(SuiteCollection.Name)]
public class CampaignRewardTests(SuiteFixture suite)
{
    private readonly GivingSteps _steps = new(suite);
    private readonly CampaignService.CampaignServiceClient _campaigns = new(suite.Campaigns.ChannelFor(Roles.Marketing));

    [Fact]
    public async Task A_tier_welcome_with_a_coupon_issues_it_once_however_often_TierChanged_arrives_and_the_message_carries_its_code()
    {
        var tag = GivingSteps.NewTag();
        var reward = await _steps.CouponRewardAsync(faceValue: 30m, stock: 100, pointsCost: 500);
        var a = await _steps.NewCustomerAsync(tag, consent: true, name: "林悦");
        await _steps.WaitForProfilesAsync(a);
        var welcome = await _steps.RunningAsync(new CreateCampaignRequest
        {
            Name = "welcome gift " + tag, Kind = CampaignKind.TierWelcome, SegmentId = (await _steps.TagSegmentAsync(tag)).SegmentId,
            Channel = CampaignChannel.AppPush, Template = "{name}，欢迎升级为 {tier} 会员，礼券 {coupon}", RewardId = reward,
            Schedule = new CampaignSchedule { Kind = ScheduleKind.OnEvent },
        });
        Assert.Equal((reward, 0, 14), (welcome.RewardId, welcome.ControlSharePercent, welcome.AttributionWindowDays));

        await _steps.PayAsync(a, 10_000m); // S1 → S2
        var campaignId = Guid.Parse(welcome.CampaignId);
        await _steps.WaitForAsync<string>("SELECT status FROM campaign_deliveries WHERE campaign_id = @campaignId", new { campaignId },
            s => s == "sent", "the welcome");

        // The same TierChanged again with its own message id (the inbox drops it) and three times as new messages, at once.
        Guid originalId;
        TierChanged changed;
        await using (var loyaltyDb = await suite.LoyaltyDb.OpenConnectionAsync())
        {
            var row = await loyaltyDb.QuerySingleAsync<(Guid Id, string Payload)>("""
                SELECT message_id, payload::text FROM change_events WHERE event_type = 'TierChanged' AND payload->>'customerId' = @a
                """, new { a });
            originalId = row.Id;
            changed = JsonSerializer.Deserialize<TierChanged>(row.Payload, new JsonSerializerOptions(JsonSerializerDefaults.Web))!;
        }
        var bus = suite.Campaigns.Services.GetRequiredService<IBus>();
        using (var consumed = new ConsumedMessages(bus))
        {
            var copies = new[] { originalId, Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid() };
            await Task.WhenAll(copies.Select(id => bus.Publish(changed, ctx => ctx.MessageId = id)));
            foreach (var id in copies) await consumed.WaitAsync(id, 2, "a copy of TierChanged"); // the read model's and the welcome's consumer
        }

        // Exactly one coupon in loyalty for this customer and reward, granted for this campaign, no points spent.
        List<string> codes;
        await using (var loyaltyDb = await suite.LoyaltyDb.OpenConnectionAsync())
        {
            codes = (await loyaltyDb.QueryAsync<string>("""
                SELECT c.code FROM coupons c JOIN reward_grants g ON g.id = c.grant_id
                WHERE c.customer_id = @a AND c.reward_id = @reward AND g.reason = @reason
                """, new { a = Guid.Parse(a), reward, reason = $"campaign {campaignId}" })).ToList();
            Assert.Equal(10_000L, await loyaltyDb.ExecuteScalarAsync<long>("SELECT balance FROM accounts WHERE customer_id = @a", new { a = Guid.Parse(a) }));
        }
        var code = Assert.Single(codes);
        await using (var db = await suite.CampaignsDb.OpenConnectionAsync())
        {
            Assert.Equal([$"林悦，欢迎升级为 S2 会员，礼券 {code}"],
                await db.QueryAsync<string>("SELECT message FROM message_log WHERE campaign_id = @campaignId", new { campaignId }));
            Assert.Equal([code], await db.QueryAsync<string>("SELECT code FROM campaign_coupons WHERE campaign_id = @campaignId", new { campaignId }));
        }
    }

    [Fact]
    public async Task A_send_whose_coupon_cannot_be_issued_is_deferred_without_message_or_cap_and_the_next_run_sends_it_with_one_coupon()
    {
        var tag = GivingSteps.NewTag();
        var reward = await _steps.CouponRewardAsync(faceValue: 20m, stock: 0);
        var c = await _steps.NewCustomerAsync(tag, consent: true, name: "周敏");
        await _steps.WaitForProfilesAsync(c);
        await _steps.WaitForAccountsAsync(c);
        var campaign = await _steps.RunningAsync(new CreateCampaignRequest
        {
            Name = "new ring " + tag, Kind = CampaignKind.NewProduct, SegmentId = (await _steps.TagSegmentAsync(tag)).SegmentId,
            Channel = CampaignChannel.Sms, Template = "{name}：新品礼券 {coupon}", RewardId = reward,
            Schedule = new CampaignSchedule { Kind = ScheduleKind.Once, StartAt = Timestamp.FromDateTime(DateTime.UtcNow) },
        });
        var campaignId = Guid.Parse(campaign.CampaignId);

        // Out of stock: loyalty refuses the grant; the send waits, with no message and the week's allowance given back.
        var r1 = await _campaigns.RunCampaignAsync(new RunCampaignRequest { CampaignId = campaign.CampaignId, Occurrence = "r1" });
        Assert.Equal((0, 1), (r1.Sent, r1.Deferred));
        var services = suite.Campaigns.Services;
        var week = services.GetRequiredService<FrequencyCap>().Week(DateTime.UtcNow).Start;
        Assert.Equal(0L, (long)await services.GetRequiredService<IConnectionMultiplexer>().GetDatabase()
            .StringGetAsync($"campaigns:cap:{Guid.Parse(c):N}:{week:yyyyMMdd}"));

        // Loyalty unreachable (the call's deadline passes): deferred as well.
        var row = await services.GetRequiredService<CampaignStore>().RequireAsync(campaignId, CancellationToken.None);
        using (var down = GrpcChannel.ForAddress("http://127.0.0.1:1"))
        {
            var rewards = new CampaignRewards(new LoyaltyService.LoyaltyServiceClient(down), services.GetRequiredService<IOptions<MarketingOptions>>(),
                TimeProvider.System, services.GetRequiredService<ILogger<CampaignRewards>>());
            var dispatcher = ActivatorUtilities.CreateInstance<CampaignDispatcher>(services, rewards);
            Assert.Equal(SendOutcome.Deferred, await dispatcher.SendAsync(row, Guid.Parse(c), "r1", null, CancellationToken.None));
        }
        await using (var db = await suite.CampaignsDb.OpenConnectionAsync())
            Assert.Equal(0, await db.ExecuteScalarAsync<int>("SELECT count(*) FROM message_log WHERE campaign_id = @campaignId", new { campaignId }));
        await using (var loyaltyDb = await suite.LoyaltyDb.OpenConnectionAsync())
            Assert.Equal(0, await loyaltyDb.ExecuteScalarAsync<int>("SELECT count(*) FROM coupons WHERE reward_id = @reward", new { reward }));

        // Restocked: the next run of the occurrence sends it, with its coupon.
        var loyaltyAdmin = new LoyaltyService.LoyaltyServiceClient(suite.Loyalty.Channel);
        await loyaltyAdmin.AdjustRewardStockAsync(new AdjustRewardStockRequest { RewardId = reward, Delta = 1, IdempotencyKey = "restock-" + reward });
        var again = await _campaigns.RunCampaignAsync(new RunCampaignRequest { CampaignId = campaign.CampaignId, Occurrence = "r1" });
        Assert.Equal((1, 0), (again.Sent, again.Deferred));
        string code;
        await using (var loyaltyDb = await suite.LoyaltyDb.OpenConnectionAsync())
            code = Assert.Single(await loyaltyDb.QueryAsync<string>("SELECT code FROM coupons WHERE reward_id = @reward", new { reward }));
        await using (var db = await suite.CampaignsDb.OpenConnectionAsync())
            Assert.Equal([$"周敏：新品礼券 {code}"], await db.QueryAsync<string>("SELECT message FROM message_log WHERE campaign_id = @campaignId", new { campaignId }));

        // A retry of the grant (as after a timeout whose grant went through) returns that same coupon, never a second one;
        // the same key for another reward is refused.
        var asCampaigns = new LoyaltyService.LoyaltyServiceClient(suite.Loyalty.ChannelFor(Roles.System));
        var key = CampaignRewards.IdempotencyKey(campaignId, Guid.Parse(c), "r1");
        var retried = await asCampaigns.GrantRewardAsync(new GrantRewardRequest { CustomerId = c, RewardId = reward, IdempotencyKey = key, Reason = "retry" });
        Assert.Equal((code, "20.00", CouponStatus.Issued), (retried.Code, retried.FaceValue.Amount, retried.Status));
        var other = await _steps.CouponRewardAsync(faceValue: 5m, stock: -1);
        await Rpc.FailsWith(StatusCode.AlreadyExists, () => asCampaigns.GrantRewardAsync(
            new GrantRewardRequest { CustomerId = c, RewardId = other, IdempotencyKey = key, Reason = "retry" }).ResponseAsync);
        // Only the campaigns service (role system) and admins grant.
        await Rpc.FailsWith(StatusCode.PermissionDenied, () => new LoyaltyService.LoyaltyServiceClient(suite.Loyalty.ChannelFor(Roles.Marketing))
            .GrantRewardAsync(new GrantRewardRequest { CustomerId = c, RewardId = other, IdempotencyKey = key + "-m", Reason = "x" }).ResponseAsync);
    }

    [Fact]
    public async Task The_control_group_holds_out_a_stable_set_that_gets_no_message_no_coupon_and_no_cap()
    {
        var tag = GivingSteps.NewTag();
        var reward = await _steps.CouponRewardAsync(faceValue: 10m, stock: -1);
        var campaign = await _steps.RunningAsync(new CreateCampaignRequest
        {
            Name = "pre-sale " + tag, Kind = CampaignKind.PreSale, SegmentId = (await _steps.TagSegmentAsync(tag)).SegmentId,
            Channel = CampaignChannel.Wechat, Template = "{name}：预售礼券 {coupon}", RewardId = reward, ControlSharePercent = 50,
            Schedule = new CampaignSchedule { Kind = ScheduleKind.Once, StartAt = Timestamp.FromDateTime(DateTime.UtcNow) },
        });
        var campaignId = Guid.Parse(campaign.CampaignId);

        // Customers until both groups have two (at 50 % that takes about four).
        var control = new List<string>();
        var treated = new List<string>();
        while (control.Count < 2 || treated.Count < 2)
        {
            var id = await _steps.NewCustomerAsync(tag, consent: true);
            (ControlGroup.IsHeldOut(campaignId, Guid.Parse(id), 50) ? control : treated).Add(id);
        }
        var all = control.Concat(treated).ToArray();
        await _steps.WaitForProfilesAsync(all);
        await _steps.WaitForAccountsAsync(all);

        foreach (var occurrence in new[] { "o1", "o2" })
        {
            var run = await _campaigns.RunCampaignAsync(new RunCampaignRequest { CampaignId = campaign.CampaignId, Occurrence = occurrence });
            Assert.Equal((treated.Count, control.Count, 0), (run.Sent, run.Control, run.Deferred));
        }
        var deliveries = await _steps.DeliveriesAsync(campaign.CampaignId);
        Assert.Equal(all.SelectMany(id => new[] { (id, "o1"), (id, "o2") }).Select(x => (x.id, x.Item2, control.Contains(x.id) ? DeliveryStatus.Control : DeliveryStatus.Sent))
                .OrderBy(x => x.id, StringComparer.Ordinal).ThenBy(x => x.Item2, StringComparer.Ordinal),
            deliveries.Select(d => (d.CustomerId, d.Occurrence, d.Status)));
        Assert.All(deliveries.Where(d => d.Status == DeliveryStatus.Control), d => Assert.Equal("", d.Message));

        // A third message this week is over the cap for the treated; the held-out have used none of theirs.
        var o3 = await _campaigns.RunCampaignAsync(new RunCampaignRequest { CampaignId = campaign.CampaignId, Occurrence = "o3" });
        Assert.Equal((0, treated.Count, control.Count), (o3.Sent, o3.Capped, o3.Control));
        var week = suite.Campaigns.Services.GetRequiredService<FrequencyCap>().Week(DateTime.UtcNow).Start;
        var redis = suite.Campaigns.Services.GetRequiredService<IConnectionMultiplexer>().GetDatabase();
        foreach (var id in control) Assert.False(await redis.KeyExistsAsync($"campaigns:cap:{Guid.Parse(id):N}:{week:yyyyMMdd}"));

        await using var loyaltyDb = await suite.LoyaltyDb.OpenConnectionAsync();
        var coupons = (await loyaltyDb.QueryAsync<Guid>("SELECT customer_id FROM coupons WHERE reward_id = @reward", new { reward }))
            .GroupBy(x => x.ToString()).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(treated.Order().Select(id => (id, 2)), coupons.OrderBy(x => x.Key).Select(x => (x.Key, x.Value)));
    }

    [Fact]
    public async Task Invalid_giving_settings_are_INVALID_ARGUMENT_naming_each_field()
    {
        var segment = await _steps.TagSegmentAsync(GivingSteps.NewTag());
        var goods = await new LoyaltyService.LoyaltyServiceClient(suite.Loyalty.Channel).UpsertRewardAsync(new UpsertRewardRequest
        {
            Reward = new Reward { Id = "cmp-goods-" + Guid.NewGuid().ToString("N")[..8], Name = "Pearl pouch", Kind = RewardKind.Goods, PointsCost = 100, Stock = -1, Active = true },
        });
        CreateCampaignRequest Request(string rewardId, int share, int? window, string template = "{name} {coupon}")
        {
            var r = new CreateCampaignRequest
            {
                Name = "invalid giving", Kind = CampaignKind.NewProduct, SegmentId = segment.SegmentId, Channel = CampaignChannel.Sms, Template = template,
                RewardId = rewardId, ControlSharePercent = share,
                Schedule = new CampaignSchedule { Kind = ScheduleKind.Once, StartAt = Timestamp.FromDateTime(DateTime.UtcNow) },
            };
            if (window is { } w) r.AttributionWindowDays = w;
            return r;
        }

        var bad = await Rpc.FailsWith(StatusCode.InvalidArgument, () => _campaigns.CreateCampaignAsync(Request("no-such-reward", 60, 0)).ResponseAsync);
        Assert.Equal(["attribution_window_days", "control_share_percent", "reward_id"], bad.Fields().Order());
        var notCoupon = await Rpc.FailsWith(StatusCode.InvalidArgument, () => _campaigns.CreateCampaignAsync(Request(goods.Id, 10, 7)).ResponseAsync);
        Assert.Equal(["reward_id"], notCoupon.Fields());
        var noReward = await Rpc.FailsWith(StatusCode.InvalidArgument, () => _campaigns.CreateCampaignAsync(Request("", 10, 366)).ResponseAsync);
        Assert.Equal(["attribution_window_days", "template"], noReward.Fields().Order());

        // Loyalty's own checks of a grant: a goods reward cannot be granted.
        var customer = await _steps.NewCustomerAsync(GivingSteps.NewTag(), consent: true);
        await _steps.WaitForAccountsAsync(customer);
        var grant = await Rpc.FailsWith(StatusCode.InvalidArgument, () => new LoyaltyService.LoyaltyServiceClient(suite.Loyalty.ChannelFor(Roles.System))
            .GrantRewardAsync(new GrantRewardRequest { CustomerId = customer, RewardId = goods.Id, IdempotencyKey = "goods-" + goods.Id, Reason = "test" }).ResponseAsync);
        Assert.Equal(["reward_id"], grant.Fields());
    }
}

/// <summary>The steps the giving tests share: customers and orders through the customer service, rewards in loyalty, waits on the read model.</summary>
public sealed class GivingSteps(SuiteFixture suite)
{
    private readonly CustomerService.CustomerServiceClient _customers = new(suite.Customer.Channel);
    private readonly SegmentService.SegmentServiceClient _segments = new(suite.Campaigns.ChannelFor(Roles.Marketing));
    private readonly CampaignService.CampaignServiceClient _campaigns = new(suite.Campaigns.ChannelFor(Roles.Marketing));

    public static string NewTag() => "give-" + Guid.NewGuid().ToString("N")[..10];

    public async Task<string> NewCustomerAsync(string tag, bool consent, string name = "王芳")
    {
        var profile = new CustomerProfile { Name = name, Phone = Customer.CustomerProfileTests.UniquePhone(), Region = "上海", MarketingConsent = consent };
        profile.Tags.Add(tag);
        return (await _customers.CreateCustomerAsync(new CreateCustomerRequest { Profile = profile })).Id;
    }

    public async Task SetTagsAsync(string customerId, params string[] tags)
    {
        var current = await _customers.GetCustomerAsync(new GetCustomerRequest { Id = customerId });
        var update = new UpdateCustomerRequest { Id = customerId, Version = current.Version, Profile = new CustomerProfile(), UpdateMask = new FieldMask() };
        update.Profile.Tags.Add(tags);
        update.UpdateMask.Paths.Add("tags");
        await _customers.UpdateCustomerAsync(update);
    }

    /// <returns>The order's external id.</returns>
    public async Task<string> PayAsync(string customerId, decimal amount, DateTime? paidAt = null)
    {
        var request = new RecordOrderRequest
        {
            CustomerId = customerId, ExternalOrderId = "GIVE-" + Guid.NewGuid().ToString("N"), Channel = "store", AmountPaid = Money.FromDecimal(amount),
            PaidAt = Timestamp.FromDateTime(paidAt ?? DateTime.UtcNow),
        };
        request.Lines.Add(new OrderLine { Sku = "PEARL-1", Quantity = 1, UnitPrice = Money.FromDecimal(amount) });
        await _customers.RecordOrderAsync(request);
        return request.ExternalOrderId;
    }

    /// <returns>The id of a new active coupon reward (no threshold, valid 30 days).</returns>
    public async Task<string> CouponRewardAsync(decimal faceValue, int stock, long pointsCost = 200)
    {
        var reward = await new LoyaltyService.LoyaltyServiceClient(suite.Loyalty.Channel).UpsertRewardAsync(new UpsertRewardRequest
        {
            Reward = new Reward
            {
                Id = "cmp-" + Guid.NewGuid().ToString("N")[..12], Name = $"{faceValue:0} 元礼券", Kind = RewardKind.Coupon, PointsCost = pointsCost,
                Stock = stock, Active = true,
                Coupon = new Crm.Loyalty.V1.CouponTerms { FaceValue = Money.FromDecimal(faceValue), Threshold = Money.FromDecimal(0), ValidDays = 30 },
            },
        });
        return reward.Id;
    }

    public async Task<T> WaitForAsync<T>(string sql, object args, Func<T, bool> done, string what, bool loyalty = false)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        await using var db = await (loyalty ? suite.LoyaltyDb : suite.CampaignsDb).OpenConnectionAsync();
        while (true)
        {
            var value = await db.QuerySingleOrDefaultAsync<T>(sql, args);
            if (value is not null && done(value)) return value;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"Timed out waiting for {what}; last: {value}");
            await Task.Delay(50);
        }
    }

    /// <summary>The profiles (with these tags) have reached the read model.</summary>
    public Task WaitForProfilesAsync(params string[] ids) => WaitForAsync<bool>(
        "SELECT count(*) = @n FROM customers WHERE customer_id = ANY(@ids) AND region IS NOT NULL",
        new { n = ids.Length, ids = ids.Select(Guid.Parse).ToArray() }, ok => ok, "the profiles in the read model");

    /// <summary>The loyalty accounts exist (CustomerRegistered opens them), so a grant finds them.</summary>
    public Task WaitForAccountsAsync(params string[] ids) => WaitForAsync<bool>(
        "SELECT count(*) = @n FROM accounts WHERE customer_id = ANY(@ids)",
        new { n = ids.Length, ids = ids.Select(Guid.Parse).ToArray() }, ok => ok, "the loyalty accounts", loyalty: true);

    public async Task<Segment> TagSegmentAsync(string tag) => await _segments.CreateSegmentAsync(new CreateSegmentRequest
    {
        Name = "giving audience " + tag, Rules = new SegmentRule { Field = SegmentField.Tags, Op = SegmentOperator.HasAny, Values = { tag } },
    });

    public async Task<Campaign> RunningAsync(CreateCampaignRequest request)
    {
        var campaign = await _campaigns.CreateCampaignAsync(request);
        campaign = await _campaigns.ChangeCampaignStateAsync(new ChangeCampaignStateRequest
            { CampaignId = campaign.CampaignId, Version = campaign.Version, State = CampaignState.Scheduled });
        return await _campaigns.ChangeCampaignStateAsync(new ChangeCampaignStateRequest
            { CampaignId = campaign.CampaignId, Version = campaign.Version, State = CampaignState.Running });
    }

    public async Task<List<Delivery>> DeliveriesAsync(string campaignId)
    {
        var all = new List<Delivery>();
        var request = new ListDeliveriesRequest { CampaignId = campaignId, PageSize = 100 };
        do
        {
            var page = await _campaigns.ListDeliveriesAsync(request);
            all.AddRange(page.Deliveries);
            request.PageToken = page.NextPageToken;
        } while (request.PageToken != "");
        return all;
    }
}
