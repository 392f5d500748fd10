using Crm.Campaigns.Marketing;
using Crm.Campaigns.V1;
using Crm.Contracts;
using Crm.IntegrationTests.Loyalty;
using Crm.IntegrationTests.Support;
using Dapper;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Crm.IntegrationTests.Campaigns;

/// <summary>
/// The tier-welcome endpoint handles several TierChanged at once (Marketing:TierWelcome): copies of the same upgrade
/// racing each other still send once per campaign and tier, and upgrades racing across campaigns never pass the weekly cap.
/// </summary>
[Collection(SuiteCollection.Name)]
public class TierWelcomeRaceTests(SuiteFixture suite)
{
    private readonly GivingSteps _steps = new(suite);

    private async Task<(string Customer, Campaign First, Campaign Second)> TwoWelcomesAsync()
    {
        var tag = GivingSteps.NewTag();
        var a = await _steps.NewCustomerAsync(tag, consent: true, name: "陈静");
        await _steps.WaitForProfilesAsync(a);
        var segment = (await _steps.TagSegmentAsync(tag)).SegmentId;
        Task<Campaign> Welcome(string name) => _steps.RunningAsync(new CreateCampaignRequest
        {
            Name = name + " " + tag, Kind = CampaignKind.TierWelcome, SegmentId = segment, Channel = CampaignChannel.AppPush,
            Template = "{name}，欢迎升级为 {tier} 会员", Schedule = new CampaignSchedule { Kind = ScheduleKind.OnEvent },
        });
        return (a, await Welcome("welcome"), await Welcome("welcome app"));
    }

    [Fact]
    public async Task Copies_of_two_upgrades_consumed_in_parallel_send_once_per_campaign_and_tier_and_never_past_the_weekly_cap()
    {
        var (a, first, second) = await TwoWelcomesAsync();
        var cap = suite.Campaigns.Services.GetRequiredService<IOptions<MarketingOptions>>().Value.FrequencyCapPerWeek;
        var customerId = Guid.Parse(a);
        var toS2 = new TierChanged(customerId, "S1", "S2", 9_000, "race", DateTimeOffset.UtcNow, 1);
        var toS3 = new TierChanged(customerId, "S2", "S3", 30_000, "race", DateTimeOffset.UtcNow, 2);
        var bus = suite.Campaigns.Services.GetRequiredService<IBus>();
        var copies = Enumerable.Range(0, 12).Select(i => (Id: Guid.NewGuid(), Event: i % 2 == 0 ? toS2 : toS3)).ToList();
        using (var inFlight = new InFlight(bus, "tier-welcome"))
        using (var consumed = new ConsumedMessages(bus))
        {
            await Task.WhenAll(copies.Select(c => bus.Publish(c.Event, ctx => ctx.MessageId = c.Id)));
            foreach (var (id, _) in copies) await consumed.WaitAsync(id, 2, "a copy of TierChanged"); // the read model's and the welcome's consumer
            Assert.True(inFlight.Most >= 2, $"the tier-welcome endpoint handled at most {inFlight.Most} message at once");
        }

        await using var db = await suite.CampaignsDb.OpenConnectionAsync();
        var deliveries = (await db.QueryAsync<(Guid Campaign, string Occurrence, string Status)>("""
            SELECT campaign_id, occurrence, status FROM campaign_deliveries WHERE customer_id = @customerId ORDER BY campaign_id, occurrence
            """, new { customerId })).ToList();
        // One delivery per campaign and tier reached, however many copies raced for it.
        Assert.Equal(new[] { Guid.Parse(first.CampaignId), Guid.Parse(second.CampaignId) }.SelectMany(c => new[] { (c, "tier:S2"), (c, "tier:S3") })
            .OrderBy(x => x.c).ThenBy(x => x.Item2, StringComparer.Ordinal), deliveries.Select(d => (d.Campaign, d.Occurrence)));
        // Four sends for one customer in one week: exactly the cap's worth go out, the rest are capped.
        var sent = Math.Min(cap, 4);
        Assert.Equal((sent, 4 - sent), (deliveries.Count(d => d.Status == "sent"), deliveries.Count(d => d.Status == "capped")));
        var messages = (await db.QueryAsync<string>("SELECT message FROM message_log WHERE customer_id = @customerId", new { customerId })).ToList();
        Assert.Equal(sent, messages.Count);
        Assert.All(messages, m => Assert.Matches("^陈静，欢迎升级为 S[23] 会员$", m));
    }

    [Fact]
    public async Task The_same_send_raced_from_many_threads_at_once_is_sent_once_and_the_cap_holds_across_campaigns()
    {
        var (a, first, second) = await TwoWelcomesAsync();
        var services = suite.Campaigns.Services;
        var dispatcher = services.GetRequiredService<CampaignDispatcher>();
        var cap = services.GetRequiredService<IOptions<MarketingOptions>>().Value.FrequencyCapPerWeek;
        var running = await services.GetRequiredService<CampaignStore>().RunningAsync(CampaignKind.TierWelcome, CancellationToken.None);
        var rows = new[] { first, second }.Select(c => running.Single(r => r.CampaignId == Guid.Parse(c.CampaignId))).ToList();
        var customerId = Guid.Parse(a);

        // Twelve sends released together from the thread pool: each of the four (campaign, tier) keys three times (twelve
        // transactions at once, within the service's pool of 20 connections that the test shares with the service).
        using var start = new Barrier(12);
        var sends = Enumerable.Range(0, 12).Select(i => Task.Run(() =>
        {
            start.SignalAndWait();
            var (row, tier) = (rows[i % 2], i % 4 < 2 ? "S2" : "S3");
            return dispatcher.SendAsync(row, customerId, "tier:" + tier, tier, CancellationToken.None);
        })).ToList();
        var outcomes = await Task.WhenAll(sends);

        var sent = Math.Min(cap, 4);
        Assert.Equal(8, outcomes.Count(o => o == SendOutcome.Duplicate));
        Assert.Equal((sent, 4 - sent), (outcomes.Count(o => o == SendOutcome.Sent), outcomes.Count(o => o == SendOutcome.Capped)));
        await using var db = await suite.CampaignsDb.OpenConnectionAsync();
        Assert.Equal(sent, await db.ExecuteScalarAsync<int>("SELECT count(*) FROM message_log WHERE customer_id = @customerId", new { customerId }));
    }

    /// <summary>The most messages one receive endpoint (its queue's name contains <c>queue</c>) was consuming at the same time.</summary>
    private sealed class InFlight : IConsumeObserver, IDisposable
    {
        private readonly string _queue;
        private readonly ConnectHandle _handle;
        private int _now;
        private int _most;

        public InFlight(IBus bus, string queue)
        {
            _queue = queue;
            _handle = bus.ConnectConsumeObserver(this);
        }

        public int Most => Volatile.Read(ref _most);

        private bool Ours(ConsumeContext context) => context.ReceiveContext.InputAddress?.AbsolutePath.Contains(_queue, StringComparison.Ordinal) == true;

        public Task PreConsume<T>(ConsumeContext<T> context) where T : class
        {
            if (!Ours(context)) return Task.CompletedTask;
            var now = Interlocked.Increment(ref _now);
            int most;
            while (now > (most = Volatile.Read(ref _most)) && Interlocked.CompareExchange(ref _most, now, most) != most) { }
            return Task.CompletedTask;
        }

        public Task PostConsume<T>(ConsumeContext<T> context) where T : class
        {
            if (Ours(context)) Interlocked.Decrement(ref _now);
            return Task.CompletedTask;
        }

        public Task ConsumeFault<T>(ConsumeContext<T> context, Exception exception) where T : class => PostConsume(context);

        public void Dispose() => _handle.Disconnect();
    }
}
