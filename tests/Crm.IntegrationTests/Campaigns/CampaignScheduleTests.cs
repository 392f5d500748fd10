using Crm.Campaigns.Marketing;
using Crm.Campaigns.V1;
using Crm.Customer.V1;
using Crm.IntegrationTests.Loyalty;
using Crm.IntegrationTests.Support;
using Dapper;
using Google.Protobuf.WellKnownTypes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Npgsql;

namespace Crm.IntegrationTests.Campaigns;

/// <summary>
/// When campaigns send, on a campaign service of its own (database campaignsclockdb, queues campaigns-clock-*) driven by a
/// fake clock: birthdays by the local day in Asia/Shanghai, quiet hours (21:00–09:00 by default) and the retry after them,
/// cron runs once per due time and once after a gap, one-off runs claimed once by racing schedulers, and MessageSent once
/// per sent message. The test calls the scheduler's and the retry's passes itself (the same ones the background loops
/// make; a pass waits for one in progress), so every check sees a finished pass.
/// </summary>
[Collection(SuiteCollection.Name)]
public class CampaignScheduleTests(SuiteFixture suite) : IAsyncLifetime
{
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 11, 20, 0, 0, 0, TimeSpan.Zero));
    private readonly FakeTimeProvider _loyaltyClock = new(new DateTimeOffset(2026, 11, 20, 0, 0, 0, TimeSpan.Zero));
    private ServiceHost _loyaltyHost = null!;
    private ServiceHost _host = null!;
    private NpgsqlDataSource _db = null!;
    private readonly CustomerService.CustomerServiceClient _customers = new(suite.Customer.Channel);
    private SegmentService.SegmentServiceClient _segments = null!;
    private CampaignService.CampaignServiceClient _campaigns = null!;

    public async Task InitializeAsync()
    {
        // A loyalty service of its own (database loyaltyexpirydb, queues loyalty-expiry-*) on its own fake clock: its point lots
        // are earned "now" and expire at the end of next year, so the points-expiring test moves its clock to that December.
        _loyaltyHost = await ServiceHost.StartAsync(
            args => Crm.Loyalty.LoyaltyApp.Build(args, services =>
            {
                services.AddSingleton<TimeProvider>(_loyaltyClock);
                services.Configure<MassTransit.MassTransitHostOptions>(o => o.WaitUntilStarted = true);
            }),
            suite.Infrastructure, "loyalty-expiry", "loyaltyexpirydb", connectionName: "loyaltydb");
        _host = await ServiceHost.StartAsync(
            args => Crm.Campaigns.CampaignsApp.Build(args, services =>
            {
                services.AddSingleton<TimeProvider>(_clock);
                services.Configure<MassTransit.MassTransitHostOptions>(o => o.WaitUntilStarted = true);
            }),
            suite.Infrastructure, "campaigns-clock", "campaignsclockdb", connectionName: "campaignsdb",
            extraArgs:
            [
                $"--services:customer:http:0={suite.Customer.GrpcAddress}", $"--services:loyalty:http:0={_loyaltyHost.GrpcAddress}",
                "--Campaigns:Recompute:Scheduled=false",
                "--Marketing:CustomerCallTimeout=00:00:30", // as in SuiteFixture: a lookup missing 2 s under a loaded test run defers the send
            ]);
        _db = NpgsqlDataSource.Create(suite.Infrastructure.Postgres!.ConnectionString("campaignsclockdb"));
        _segments = new(_host.ChannelFor(Crm.ServiceDefaults.Security.Roles.Marketing));
        _campaigns = new(_host.ChannelFor(Crm.ServiceDefaults.Security.Roles.Marketing));
    }

    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        await _loyaltyHost.DisposeAsync();
        await _db.DisposeAsync();
    }

    private void SetUtc(int year, int month, int day, int hour, int minute, int second = 0) =>
        _clock.SetUtcNow(new DateTimeOffset(year, month, day, hour, minute, second, TimeSpan.Zero));

    private Task TickAsync() => _host.Services.GetRequiredService<CampaignScheduler>().TickAsync(CancellationToken.None);
    private Task RetryAsync() => _host.Services.GetRequiredService<DeferredRetry>().RetryDueAsync(CancellationToken.None);

    private async Task<string> NewCustomerAsync(string tag, string name, Google.Type.Date? birthday = null)
    {
        var profile = new CustomerProfile { Name = name, Phone = Customer.CustomerProfileTests.UniquePhone(), Region = "上海", MarketingConsent = true };
        if (birthday is not null) profile.Birthday = birthday;
        profile.Tags.Add(tag);
        return (await _customers.CreateCustomerAsync(new CreateCustomerRequest { Profile = profile })).Id;
    }

    private async Task WaitForProfilesAsync(params string[] ids)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        await using var connection = await _db.OpenConnectionAsync();
        while (await connection.ExecuteScalarAsync<int>("SELECT count(*) FROM customers WHERE customer_id = ANY(@ids) AND region IS NOT NULL",
                   new { ids = ids.Select(Guid.Parse).ToArray() }) < ids.Length)
        {
            Assert.True(DateTime.UtcNow < deadline, "the profiles did not reach the clocked read model");
            await Task.Delay(100);
        }
    }

    private async Task<Campaign> RunningAsync(string tag, CampaignKind kind, CampaignSchedule schedule, string template)
    {
        var segment = await _segments.CreateSegmentAsync(new CreateSegmentRequest
        {
            Name = "schedule audience " + tag, Rules = new SegmentRule { Field = SegmentField.Tags, Op = SegmentOperator.HasAny, Values = { tag } },
        });
        var campaign = await _campaigns.CreateCampaignAsync(new CreateCampaignRequest
        {
            Name = $"{kind} {tag}", Kind = kind, SegmentId = segment.SegmentId, Channel = CampaignChannel.Sms, Template = template, Schedule = schedule,
        });
        campaign = await _campaigns.ChangeCampaignStateAsync(new ChangeCampaignStateRequest
            { CampaignId = campaign.CampaignId, Version = campaign.Version, State = CampaignState.Scheduled });
        return await _campaigns.ChangeCampaignStateAsync(new ChangeCampaignStateRequest
            { CampaignId = campaign.CampaignId, Version = campaign.Version, State = CampaignState.Running });
    }

    /// <summary>Finished at the end of a test, so the next test's clock does not run it again.</summary>
    private async Task FinishAsync(string campaignId)
    {
        var c = await _campaigns.GetCampaignAsync(new GetCampaignRequest { CampaignId = campaignId });
        await _campaigns.ChangeCampaignStateAsync(new ChangeCampaignStateRequest { CampaignId = campaignId, Version = c.Version, State = CampaignState.Finished });
    }

    private async Task<List<(Guid CustomerId, string Occurrence, string Status, DateTime? NotBefore)>> DeliveriesAsync(string campaignId)
    {
        await using var connection = await _db.OpenConnectionAsync();
        return (await connection.QueryAsync<(Guid, string, string, DateTime?)>(
            "SELECT customer_id, occurrence, status, not_before FROM campaign_deliveries WHERE campaign_id = @id ORDER BY customer_id, occurrence",
            new { id = Guid.Parse(campaignId) })).ToList();
    }

    private async Task<List<(Guid CustomerId, string Occurrence, string Message)>> MessagesAsync(string campaignId)
    {
        await using var connection = await _db.OpenConnectionAsync();
        return (await connection.QueryAsync<(Guid, string, string)>(
            "SELECT customer_id, occurrence, message FROM message_log WHERE campaign_id = @id ORDER BY sent_at, customer_id",
            new { id = Guid.Parse(campaignId) })).ToList();
    }

    private async Task<List<string>> RunsAsync(string campaignId)
    {
        await using var connection = await _db.OpenConnectionAsync();
        return (await connection.QueryAsync<string>("SELECT occurrence FROM campaign_runs WHERE campaign_id = @id ORDER BY occurrence",
            new { id = Guid.Parse(campaignId) })).ToList();
    }

    [Fact]
    public async Task A_birthday_is_greeted_on_the_day_in_Shanghai_after_quiet_hours_once_a_year_with_one_MessageSent_and_29_February_on_the_28th()
    {
        SetUtc(2026, 11, 26, 10, 0); // 18:00 on the 26th in Shanghai
        var tag = "bday-" + Guid.NewGuid().ToString("N")[..10];
        var a = await NewCustomerAsync(tag, "林雪", new Google.Type.Date { Year = 1990, Month = 11, Day = 27 });
        var leap = await NewCustomerAsync(tag, "周岚", new Google.Type.Date { Year = 2000, Month = 2, Day = 29 });
        await WaitForProfilesAsync(a, leap);
        await using var sent = await EventProbe.StartAsync(suite.Infrastructure.RabbitMq!.AmqpUri, "Crm.Contracts:MessageSent");
        await using var launched = await EventProbe.StartAsync(suite.Infrastructure.RabbitMq!.AmqpUri, "Crm.Contracts:CampaignLaunched");
        var outboxFrom = await Markers.PositionAsync(_db);
        var campaign = await RunningAsync(tag, CampaignKind.Birthday, new CampaignSchedule { Kind = ScheduleKind.OnEvent }, "{name}，生日快乐！");
        await launched.WaitUntilAsync(() => launched.For("campaignId", campaign.CampaignId).Count == 1, TimeSpan.FromSeconds(15), "CampaignLaunched");
        Assert.Equal("birthday", launched.For("campaignId", campaign.CampaignId)[0].Message.GetProperty("kind").GetString());

        // 23:59 on the 26th in Shanghai (15:59 UTC): not A's birthday yet.
        SetUtc(2026, 11, 26, 15, 59);
        await TickAsync();
        Assert.Empty(await DeliveriesAsync(campaign.CampaignId));

        // 00:00:30 on the 27th (16:00:30 UTC, still the 26th in UTC): A's day, but in quiet hours — deferred until 09:00 local.
        SetUtc(2026, 11, 26, 16, 0, 30);
        await TickAsync();
        await RetryAsync();
        var ga = Guid.Parse(a);
        Assert.Equal([(ga, "birthday:2026", "deferred", new DateTime(2026, 11, 27, 1, 0, 0))], await DeliveriesAsync(campaign.CampaignId));
        Assert.Empty(await MessagesAsync(campaign.CampaignId));
        var listed = (await _campaigns.ListDeliveriesAsync(new ListDeliveriesRequest { CampaignId = campaign.CampaignId })).Deliveries.Single();
        Assert.Equal((DeliveryStatus.Deferred, new DateTime(2026, 11, 27, 1, 0, 0, DateTimeKind.Utc)), (listed.Status, listed.NotBefore.ToDateTime()));

        // 09:00:30 local: the retry sends it, with the occurrence kept.
        SetUtc(2026, 11, 27, 1, 0, 30);
        await RetryAsync();
        Assert.Equal([(ga, "birthday:2026", "林雪，生日快乐！")], await MessagesAsync(campaign.CampaignId));

        // The scheduler ticking again that day, and later that year, sends nothing more.
        await TickAsync();
        SetUtc(2026, 11, 27, 12, 0);
        await TickAsync();
        await RetryAsync();
        Assert.Equal([(ga, "birthday:2026", "sent", null)], await DeliveriesAsync(campaign.CampaignId));

        // 28 February 2027 (not a leap year), 09:00:30 local: the one born on 29 February is greeted. Its MessageSent, written
        // after every earlier row was published, is the marker after which a second MessageSent for A would have arrived.
        await Markers.DrainAsync(_db, outboxFrom);
        SetUtc(2027, 2, 28, 1, 0, 30);
        await TickAsync();
        Assert.Equal((Guid.Parse(leap), "birthday:2027"), (await MessagesAsync(campaign.CampaignId)).Select(m => (m.CustomerId, m.Occurrence)).Last());
        await sent.WaitUntilAsync(() => sent.For("customerId", leap).Count == 1, TimeSpan.FromSeconds(15), "the 29 February greeting's MessageSent");
        var forA = sent.For("customerId", a);
        Assert.Single(forA);
        Assert.Equal((campaign.CampaignId, "birthday:2026", "sms"), (forA[0].Message.GetProperty("campaignId").GetString(),
            forA[0].Message.GetProperty("occurrence").GetString(), forA[0].Message.GetProperty("channel").GetString()));
        await FinishAsync(campaign.CampaignId);
    }

    [Fact]
    public async Task A_recurring_campaign_runs_once_per_due_time_and_once_not_per_missed_time_after_a_gap()
    {
        SetUtc(2026, 11, 20, 0, 0); // Friday 08:00 in Shanghai
        var tag = "cron-" + Guid.NewGuid().ToString("N")[..10];
        var e = await NewCustomerAsync(tag, "赵敏");
        await WaitForProfilesAsync(e);
        var campaign = await RunningAsync(tag, CampaignKind.NewProduct, new CampaignSchedule { Kind = ScheduleKind.Recurring, Cron = "0 10 * * *" },
            "{name}，每日新品");

        // Yesterday's 10:00 was before the campaign ran: nothing due.
        await TickAsync();
        Assert.Empty(await RunsAsync(campaign.CampaignId));

        // 10:00:30 local, then the scheduler ticking again half an hour later: one run.
        SetUtc(2026, 11, 20, 2, 0, 30);
        await TickAsync();
        SetUtc(2026, 11, 20, 2, 30);
        await TickAsync();
        Assert.Equal(["2026-11-20T10:00"], await RunsAsync(campaign.CampaignId));

        // The service is "down" until Wednesday 12:00 local: only Wednesday's 10:00 runs, not the four missed days.
        SetUtc(2026, 11, 25, 4, 0);
        await TickAsync();
        await TickAsync();
        Assert.Equal(["2026-11-20T10:00", "2026-11-25T10:00"], await RunsAsync(campaign.CampaignId));
        Assert.Equal([(Guid.Parse(e), "2026-11-20T10:00", "赵敏，每日新品"), (Guid.Parse(e), "2026-11-25T10:00", "赵敏，每日新品")],
            await MessagesAsync(campaign.CampaignId));
        await FinishAsync(campaign.CampaignId);
    }

    [Fact]
    public async Task A_one_off_campaign_runs_at_its_start_once_however_many_schedulers_race_for_it()
    {
        SetUtc(2026, 11, 23, 2, 0); // Monday 10:00 in Shanghai
        var tag = "once-" + Guid.NewGuid().ToString("N")[..10];
        var (f, g) = (await NewCustomerAsync(tag, "孙丽"), await NewCustomerAsync(tag, "钱进"));
        await WaitForProfilesAsync(f, g);
        var campaign = await RunningAsync(tag, CampaignKind.PreSale,
            new CampaignSchedule { Kind = ScheduleKind.Once, StartAt = Timestamp.FromDateTimeOffset(new DateTimeOffset(2026, 11, 23, 3, 0, 0, TimeSpan.Zero)) },
            "{name}：预售明天开始");
        await TickAsync();
        Assert.Empty(await RunsAsync(campaign.CampaignId));

        // At start_at, four schedulers (as four instances would) tick at once: one claims the occurrence.
        SetUtc(2026, 11, 23, 3, 0, 10);
        var schedulers = Enumerable.Range(0, 4).Select(_ => ActivatorUtilities.CreateInstance<CampaignScheduler>(_host.Services)).ToList();
        await Task.WhenAll(schedulers.Select(s => Task.Run(() => s.TickAsync(CancellationToken.None))));
        await TickAsync(); // the service's own scheduler may have won the claim on the clock's move: wait for its pass
        Assert.Equal(["once"], await RunsAsync(campaign.CampaignId));
        Assert.Equal(2, (await MessagesAsync(campaign.CampaignId)).Count(m => m.Occurrence == "once"));
        await using (var connection = await _db.OpenConnectionAsync())
            Assert.Equal((2, true), await connection.QuerySingleAsync<(int, bool)>(
                "SELECT sent, finished_at IS NOT NULL FROM campaign_runs WHERE campaign_id = @id", new { id = Guid.Parse(campaign.CampaignId) }));

        // The claim itself under a real race: eight claims of a new occurrence, one winner.
        var runs = _host.Services.GetRequiredService<CampaignRuns>();
        var now = _clock.GetUtcNow().UtcDateTime;
        var claims = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() =>
            runs.TryClaimAsync(Guid.Parse(campaign.CampaignId), "race", now, now, CancellationToken.None))));
        Assert.Equal(1, claims.Count(c => c));
        await FinishAsync(campaign.CampaignId);
    }
    [Fact]
    public async Task Win_back_goes_to_a_customer_whose_churn_risk_rose_into_the_high_band_after_a_recompute_once_per_rise()
    {
        // 10:00 in Shanghai on the next UTC day: the baseline recompute, hours after the customer's only order (churn low).
        var baseline = new DateTimeOffset(DateTime.UtcNow.Date.AddDays(1).AddHours(2), TimeSpan.Zero);
        _clock.SetUtcNow(baseline);
        var tag = "winback-" + Guid.NewGuid().ToString("N")[..10];
        var w = await NewCustomerAsync(tag, "吴昊");
        var order = new RecordOrderRequest
        {
            CustomerId = w, ExternalOrderId = "WB-" + Guid.NewGuid().ToString("N"), Channel = "store", AmountPaid = Crm.Common.V1.Money.FromDecimal(1_200m),
            PaidAt = Timestamp.FromDateTime(DateTime.UtcNow.AddMinutes(-1)),
        };
        order.Lines.Add(new OrderLine { Sku = "RING-9", Quantity = 1, UnitPrice = Crm.Common.V1.Money.FromDecimal(1_200m) });
        await _customers.RecordOrderAsync(order);
        await WaitForProfilesAsync(w);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        await using (var connection = await _db.OpenConnectionAsync())
            while (await connection.ExecuteScalarAsync<int>("SELECT count(*) FROM orders WHERE customer_id = @w", new { w = Guid.Parse(w) }) == 0)
            {
                Assert.True(DateTime.UtcNow < deadline, "the order did not reach the clocked read model");
                await Task.Delay(100);
            }
        var campaign = await RunningAsync(tag, CampaignKind.WinBack, new CampaignSchedule { Kind = ScheduleKind.OnEvent }, "{name}，好久不见");
        var recompute = _host.Services.GetRequiredService<Crm.Campaigns.Analytics.ScoreRecompute>();

        async Task<(long Run, string Churn)> RecomputeAsync()
        {
            var run = await recompute.RunAfterOthersAsync(false, CancellationToken.None);
            await TickAsync();
            await using var connection = await _db.OpenConnectionAsync();
            return (run.Id, await connection.ExecuteScalarAsync<string>("SELECT churn FROM customer_scores WHERE customer_id = @w", new { w = Guid.Parse(w) }) ?? "");
        }

        var first = await RecomputeAsync();
        Assert.Equal("low", first.Churn);
        Assert.Empty(await DeliveriesAsync(campaign.CampaignId));

        // Three years without an order: high risk — a rise, so the win-back goes out once.
        _clock.SetUtcNow(baseline.AddYears(3));
        var risen = await RecomputeAsync();
        Assert.Equal("high", risen.Churn);
        var watched = await WatchRowAsync(w);
        // Still high at the next recompute: no new rise, no new message, and the watch row is not written or even locked
        // (locking it puts the locker's xid into xmax; the update of the rise left its own there).
        var again = await RecomputeAsync();
        Assert.Equal("high", again.Churn);
        Assert.Equal(watched, await WatchRowAsync(w));
        Assert.Equal([(Guid.Parse(w), $"win-back:{risen.Run}", "吴昊，好久不见")], await MessagesAsync(campaign.CampaignId));
        await FinishAsync(campaign.CampaignId);
    }
    private async Task<(string Xmin, string Xmax)> WatchRowAsync(string customerId)
    {
        await using var connection = await _db.OpenConnectionAsync();
        return await connection.QuerySingleAsync<(string, string)>("SELECT xmin::text, xmax::text FROM churn_watch WHERE customer_id = @id",
            new { id = Guid.Parse(customerId) });
    }

    [Fact]
    public async Task Points_expiring_reminds_members_of_their_expiring_batch_once_however_many_days_it_stays_in_the_window()
    {
        // Earned on 26 November 2026 (loyalty's clock): the lot expires at the end of 2027 in brand time.
        _loyaltyClock.SetUtcNow(new DateTimeOffset(2026, 11, 26, 2, 0, 0, TimeSpan.Zero));
        var tag = "expiry-" + Guid.NewGuid().ToString("N")[..10];
        var x = await NewCustomerAsync(tag, "郑洁");
        var order = new RecordOrderRequest
        {
            CustomerId = x, ExternalOrderId = "EXP-" + Guid.NewGuid().ToString("N"), Channel = "store", AmountPaid = Crm.Common.V1.Money.FromDecimal(880m),
            PaidAt = Timestamp.FromDateTime(DateTime.UtcNow.AddMinutes(-1)),
        };
        order.Lines.Add(new OrderLine { Sku = "BANGLE-2", Quantity = 1, UnitPrice = Crm.Common.V1.Money.FromDecimal(880m) });
        await _customers.RecordOrderAsync(order);
        await WaitForProfilesAsync(x);
        var loyalty = new Crm.Loyalty.V1.LoyaltyService.LoyaltyServiceClient(_loyaltyHost.Channel);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            try
            {
                if ((await loyalty.GetAccountAsync(new Crm.Loyalty.V1.GetAccountRequest { CustomerId = x })).Balance == 880) break;
            }
            catch (Grpc.Core.RpcException e) when (e.StatusCode == Grpc.Core.StatusCode.NotFound) { }
            Assert.True(DateTime.UtcNow < deadline, "the points were not earned in the loyalty instance");
            await Task.Delay(100);
        }

        // 10 December 2027, 10:00 in Shanghai on both clocks: within 30 days of the expiry.
        void Both(DateTimeOffset t) { _clock.SetUtcNow(t); _loyaltyClock.SetUtcNow(t); }
        Both(new DateTimeOffset(2027, 12, 10, 2, 0, 0, TimeSpan.Zero));
        var campaign = await RunningAsync(tag, CampaignKind.PointsExpiring, new CampaignSchedule { Kind = ScheduleKind.OnEvent }, "{name}，您有积分即将到期");
        await TickAsync();
        // The next day the points are still in the window: no second reminder for the same batch.
        Both(new DateTimeOffset(2027, 12, 11, 2, 0, 0, TimeSpan.Zero));
        await TickAsync();
        Assert.Equal(["expiring-day:2027-12-10", "expiring-day:2027-12-11"], await RunsAsync(campaign.CampaignId));
        Assert.Equal([(Guid.Parse(x), "expiring:2028-01-01T00:00", "郑洁，您有积分即将到期")], await MessagesAsync(campaign.CampaignId));
        await FinishAsync(campaign.CampaignId);
    }
}
