using System.Text.Json;
using Crm.Campaigns.V1;
using Crm.Common.V1;
using Crm.Contracts;
using Crm.Customer.V1;
using Crm.IntegrationTests.Loyalty;
using Crm.IntegrationTests.Support;
using Dapper;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;

namespace Crm.IntegrationTests.Campaigns;

/// <summary>
/// Campaigns end to end on the production path: customers and orders through the customer service, tier upgrades from the
/// loyalty service's TierChanged, sends through the default sender into message_log, the weekly cap in the suite's Redis.
/// Every campaign here targets a segment limited to the test's own tag, so other tests' customers never receive it.
/// </summary>
[Collection(SuiteCollection.Name)]
public class CampaignTests(SuiteFixture suite)
{
    private readonly CustomerService.CustomerServiceClient _customers = new(suite.Customer.Channel);
    private readonly SegmentService.SegmentServiceClient _segments = new(suite.Campaigns.ChannelFor(Crm.ServiceDefaults.Security.Roles.Marketing));
    private readonly CampaignService.CampaignServiceClient _campaigns = new(suite.Campaigns.ChannelFor(Crm.ServiceDefaults.Security.Roles.Marketing));

    private static string NewTag() => "cmp-" + Guid.NewGuid().ToString("N")[..10];

    private async Task<string> NewCustomerAsync(string tag, bool consent, string name = "王芳")
    {
        var profile = new CustomerProfile { Name = name, Phone = Customer.CustomerProfileTests.UniquePhone(), Region = "上海", MarketingConsent = consent };
        profile.Tags.Add(tag);
        return (await _customers.CreateCustomerAsync(new CreateCustomerRequest { Profile = profile })).Id;
    }

    private async Task PayAsync(string customerId, decimal amount)
    {
        var request = new RecordOrderRequest
        {
            CustomerId = customerId, ExternalOrderId = "CMP-" + Guid.NewGuid().ToString("N"), Channel = "store", AmountPaid = Money.FromDecimal(amount),
            PaidAt = Timestamp.FromDateTime(DateTime.UtcNow.AddMinutes(-1)),
        };
        request.Lines.Add(new OrderLine { Sku = "PEARL-1", Quantity = 1, UnitPrice = Money.FromDecimal(amount) });
        await _customers.RecordOrderAsync(request);
    }

    private async Task<T> WaitForAsync<T>(string sql, object args, Func<T, bool> done, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        await using var db = await suite.CampaignsDb.OpenConnectionAsync();
        while (true)
        {
            var value = await db.QuerySingleOrDefaultAsync<T>(sql, args);
            if (value is not null && done(value)) return value;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"Timed out waiting for {what}; last: {value}");
            await Task.Delay(100);
        }
    }

    /// <summary>The profiles have reached the read model (segments match on their tag and consent).</summary>
    private Task WaitForProfilesAsync(params string[] ids) => WaitForAsync<bool>(
        "SELECT count(*) = @n FROM customers WHERE customer_id = ANY(@ids) AND region IS NOT NULL",
        new { n = ids.Length, ids = ids.Select(Guid.Parse).ToArray() }, ok => ok, "the profiles in the read model");

    private async Task<Segment> TagSegmentAsync(string tag) => await _segments.CreateSegmentAsync(new CreateSegmentRequest
    {
        Name = "campaign audience " + tag, Rules = new SegmentRule { Field = SegmentField.Tags, Op = SegmentOperator.HasAny, Values = { tag } },
    });

    private async Task<Campaign> RunningAsync(CreateCampaignRequest request)
    {
        var campaign = await _campaigns.CreateCampaignAsync(request);
        campaign = await _campaigns.ChangeCampaignStateAsync(new ChangeCampaignStateRequest
            { CampaignId = campaign.CampaignId, Version = campaign.Version, State = CampaignState.Scheduled });
        return await _campaigns.ChangeCampaignStateAsync(new ChangeCampaignStateRequest
            { CampaignId = campaign.CampaignId, Version = campaign.Version, State = CampaignState.Running });
    }

    private async Task<List<Delivery>> DeliveriesAsync(string campaignId)
    {
        var all = new List<Delivery>();
        var request = new ListDeliveriesRequest { CampaignId = campaignId, PageSize = 2 };
        do
        {
            var page = await _campaigns.ListDeliveriesAsync(request);
            all.AddRange(page.Deliveries);
            request.PageToken = page.NextPageToken;
        } while (request.PageToken != "");
        return all;
    }

    [Fact]
    public async Task States_move_draft_scheduled_running_paused_finished_and_other_moves_are_FAILED_PRECONDITION()
    {
        var segment = await TagSegmentAsync(NewTag());
        var campaign = await _campaigns.CreateCampaignAsync(new CreateCampaignRequest
        {
            Name = "pre-sale", Kind = CampaignKind.PreSale, SegmentId = segment.SegmentId, Channel = CampaignChannel.Sms, Template = "{name}, 预售开始",
            Schedule = new CampaignSchedule { Kind = ScheduleKind.Once, StartAt = Timestamp.FromDateTime(DateTime.UtcNow.AddDays(1)) },
            IdempotencyKey = "cmp-" + segment.SegmentId,
        });
        Assert.Equal((CampaignState.Draft, 1L), (campaign.State, campaign.Version));
        Assert.Equal(campaign.CampaignId, (await _campaigns.CreateCampaignAsync(new CreateCampaignRequest
        {
            Name = "pre-sale", Kind = CampaignKind.PreSale, SegmentId = segment.SegmentId, Channel = CampaignChannel.Sms, Template = "{name}, 预售开始",
            Schedule = new CampaignSchedule { Kind = ScheduleKind.Once, StartAt = Timestamp.FromDateTime(DateTime.UtcNow.AddDays(1)) },
            IdempotencyKey = "cmp-" + segment.SegmentId,
        })).CampaignId);

        Task<Campaign> Move(Campaign c, CampaignState to) =>
            _campaigns.ChangeCampaignStateAsync(new ChangeCampaignStateRequest { CampaignId = c.CampaignId, Version = c.Version, State = to }).ResponseAsync;

        await Rpc.FailsWith(StatusCode.FailedPrecondition, () => Move(campaign, CampaignState.Running));
        await Rpc.FailsWith(StatusCode.FailedPrecondition,
            () => _campaigns.RunCampaignAsync(new RunCampaignRequest { CampaignId = campaign.CampaignId }).ResponseAsync);
        var scheduled = await Move(campaign, CampaignState.Scheduled);
        await Rpc.FailsWith(StatusCode.Aborted, () => Move(campaign, CampaignState.Draft)); // version 1 is stale now
        var running = await Move(scheduled, CampaignState.Running);
        var paused = await Move(running, CampaignState.Paused);
        await Rpc.FailsWith(StatusCode.FailedPrecondition, () => Move(paused, CampaignState.Scheduled));
        var resumed = await Move(paused, CampaignState.Running);
        var finished = await Move(resumed, CampaignState.Finished);
        Assert.Equal((CampaignState.Finished, 6L), (finished.State, finished.Version));
        await Rpc.FailsWith(StatusCode.FailedPrecondition, () => Move(finished, CampaignState.Running));

        var bad = await Rpc.FailsWith(StatusCode.InvalidArgument, () => _campaigns.CreateCampaignAsync(new CreateCampaignRequest
        {
            Name = "typo", Kind = CampaignKind.NewProduct, Channel = CampaignChannel.Email, Template = "Hi {nmae}",
            Schedule = new CampaignSchedule { Kind = ScheduleKind.Recurring, Cron = "0 10 * *" },
        }).ResponseAsync);
        Assert.Equal(["schedule.cron", "segment_id", "template"], bad.Fields());
    }

    [Fact]
    public async Task A_tier_welcome_sends_once_per_upgrade_never_without_consent_and_runs_respect_consent_at_send_time_and_the_weekly_cap()
    {
        var tag = NewTag();
        var a = await NewCustomerAsync(tag, consent: true, name: "王芳");
        var b = await NewCustomerAsync(tag, consent: false);
        var d = await NewCustomerAsync(tag, consent: true);
        await WaitForProfilesAsync(a, b, d);
        var segment = await TagSegmentAsync(tag);
        var welcome = await RunningAsync(new CreateCampaignRequest
        {
            Name = "welcome " + tag, Kind = CampaignKind.TierWelcome, SegmentId = segment.SegmentId, Channel = CampaignChannel.AppPush,
            Template = "{name}，欢迎升级为 {tier} 会员", Schedule = new CampaignSchedule { Kind = ScheduleKind.OnEvent },
        });

        // A and B reach S2 (growth value 8,001+); B has no consent.
        await PayAsync(a, 10_000m);
        await PayAsync(b, 10_000m);
        var welcomeId = Guid.Parse(welcome.CampaignId);
        await WaitForAsync<int>("SELECT count(*) FROM campaign_deliveries WHERE campaign_id = @welcomeId", new { welcomeId }, n => n == 2,
            "A's and B's welcome deliveries");

        // The same TierChanged three more times, at once, each as a new message (the inbox cannot drop them): still one message.
        TierChanged changed;
        await using (var loyaltyDb = await suite.LoyaltyDb.OpenConnectionAsync())
            changed = JsonSerializer.Deserialize<TierChanged>(await loyaltyDb.QuerySingleAsync<string>("""
                SELECT payload::text FROM change_events WHERE event_type = 'TierChanged' AND payload->>'customerId' = @a
                """, new { a }), new JsonSerializerOptions(JsonSerializerDefaults.Web))!;
        Assert.Equal(("S1", "S2"), (changed.OldTier, changed.NewTier));
        var bus = suite.Campaigns.Services.GetRequiredService<IBus>();
        using (var consumed = new ConsumedMessages(bus))
        {
            var copies = Enumerable.Range(0, 3).Select(_ => Guid.NewGuid()).ToList();
            await Task.WhenAll(copies.Select(id => bus.Publish(changed, ctx => ctx.MessageId = id)));
            // Each copy is consumed by the read model's and the welcome's consumer.
            foreach (var id in copies) await consumed.WaitAsync(id, 2, "a copy of TierChanged");
        }
        await using (var db = await suite.CampaignsDb.OpenConnectionAsync())
        {
            var messages = (await db.QueryAsync<(Guid CustomerId, string Occurrence, string Message)>(
                "SELECT customer_id, occurrence, message FROM message_log WHERE campaign_id = @welcomeId", new { welcomeId })).ToList();
            Assert.Equal([(Guid.Parse(a), "tier:S2", "王芳，欢迎升级为 S2 会员")], messages);
        }
        var deliveries = await DeliveriesAsync(welcome.CampaignId);
        Assert.Equal(new[] { (a, DeliveryStatus.Sent), (b, DeliveryStatus.NoConsent) }.OrderBy(x => x.Item1),
            deliveries.Select(x => (x.CustomerId, x.Status)).OrderBy(x => x.CustomerId));

        // A one-off campaign over the same tag. Its audience is frozen first (as a run does), then D withdraws consent: the
        // run checks consent at send time and skips D. A now gets its second message of the week.
        var presale = await RunningAsync(new CreateCampaignRequest
        {
            Name = "pre-sale " + tag, Kind = CampaignKind.PreSale, SegmentId = segment.SegmentId, Channel = CampaignChannel.Sms,
            Template = "{name}: 预售 {tier}", Schedule = new CampaignSchedule { Kind = ScheduleKind.Once, StartAt = Timestamp.FromDateTime(DateTime.UtcNow) },
        });
        var snapshot = await _segments.SnapshotSegmentAsync(new SnapshotSegmentRequest
            { SegmentId = segment.SegmentId, IdempotencyKey = $"campaign:{presale.CampaignId}:w1" });
        Assert.Equal(3, snapshot.MemberCount);
        var current = await _customers.GetCustomerAsync(new GetCustomerRequest { Id = d });
        var withdraw = new UpdateCustomerRequest
            { Id = d, Version = current.Version, Profile = new CustomerProfile { MarketingConsent = false }, UpdateMask = new FieldMask() };
        withdraw.UpdateMask.Paths.Add("marketing_consent");
        await _customers.UpdateCustomerAsync(withdraw);
        await WaitForAsync<bool>("SELECT NOT marketing_consent FROM customers WHERE customer_id = @d", new { d = Guid.Parse(d) }, ok => ok,
            "D's withdrawal in the read model");

        var run = await _campaigns.RunCampaignAsync(new RunCampaignRequest { CampaignId = presale.CampaignId, Occurrence = "w1" });
        Assert.Equal((1, 0, 2, 0, 0), (run.Sent, run.Duplicate, run.NoConsent, run.Capped, run.Deferred));
        var rerun = await _campaigns.RunCampaignAsync(new RunCampaignRequest { CampaignId = presale.CampaignId, Occurrence = "w1" });
        Assert.Equal((0, 3), (rerun.Sent, rerun.Duplicate));

        // A third message in the same week is over the cap of two (welcome + pre-sale).
        var third = await _campaigns.RunCampaignAsync(new RunCampaignRequest { CampaignId = presale.CampaignId, Occurrence = "w1-reminder" });
        Assert.Equal((0, 2, 1), (third.Sent, third.NoConsent, third.Capped));
        await using (var db = await suite.CampaignsDb.OpenConnectionAsync())
            Assert.Equal(["王芳: 预售 S2"], await db.QueryAsync<string>(
                "SELECT message FROM message_log WHERE campaign_id = @id", new { id = Guid.Parse(presale.CampaignId) }));
    }
}
