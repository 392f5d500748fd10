using Crm.Customer.V1;
using Crm.IntegrationTests.Support;
using Crm.Loyalty.Expiry;
using Crm.Loyalty.V1;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace Crm.IntegrationTests.Loyalty;

/// <summary>
/// Streaks and expiry driven by a fake clock, on a loyalty instance of its own (own database, own queues), so
/// moving its time does not move anyone else's.
/// </summary>
[Collection(SuiteCollection.Name)]
public class ClockTests(SuiteFixture suite) : IAsyncLifetime
{
    private static readonly TimeSpan Shanghai = TimeSpan.FromHours(8);
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 1, 1, 10, 0, 0, Shanghai));
    private ServiceHost _host = null!;
    private LoyaltyService.LoyaltyServiceClient _loyalty = null!;
    private Shoppers _shoppers = null!;

    public async Task InitializeAsync()
    {
        _host = await ServiceHost.StartAsync(
            args => Crm.Loyalty.LoyaltyApp.Build(args, services =>
            {
                services.AddSingleton<TimeProvider>(_clock);
                // Its queues must be bound before the test registers customers and records orders, or they miss it.
                services.Configure<MassTransit.MassTransitHostOptions>(o => o.WaitUntilStarted = true);
            }),
            suite.Infrastructure, "loyalty-clock", "loyaltyclockdb", connectionName: "loyaltydb");
        _loyalty = new LoyaltyService.LoyaltyServiceClient(_host.Channel);
        // The suite's customer service publishes the orders; this instance earns them at its own (fake) time.
        _shoppers = new Shoppers(new CustomerService.CustomerServiceClient(suite.Customer.Channel), _loyalty);
    }

    public async Task DisposeAsync() => await _host.DisposeAsync();

    private void SetLocal(int year, int month, int day, int hour = 10, int minute = 0) =>
        _clock.SetUtcNow(new DateTimeOffset(year, month, day, hour, minute, 0, Shanghai));

    [Fact]
    public async Task Check_in_streak_with_a_bonus_on_day_7_a_rejected_second_check_in_and_a_missed_day()
    {
        var customerId = Guid.NewGuid().ToString();
        await _loyalty.OpenAccountAsync(new OpenAccountRequest { CustomerId = customerId });
        var earned = new List<(int Streak, long Points)>();
        for (var day = 1; day <= 7; day++)
        {
            SetLocal(2026, 6, day, hour: day == 3 ? 23 : 9, minute: day == 3 ? 59 : 0);
            var result = await _loyalty.CheckInAsync(new CheckInRequest { CustomerId = customerId });
            earned.Add((result.Streak, result.Entry.Points));
        }
        Assert.Equal([(1, 5L), (2, 5L), (3, 5L), (4, 5L), (5, 5L), (6, 5L), (7, 55L)], earned);

        // Again on day 7: refused, and nothing earned.
        SetLocal(2026, 6, 7, hour: 21);
        var again = await Rpc.FailsWith(StatusCode.AlreadyExists, () => _loyalty.CheckInAsync(new CheckInRequest { CustomerId = customerId }).ResponseAsync);
        Assert.Contains("already checked in today (2026-06-07)", again.Status.Detail);

        // Day 8 missed; day 9 starts over.
        SetLocal(2026, 6, 9);
        var restart = await _loyalty.CheckInAsync(new CheckInRequest { CustomerId = customerId });
        Assert.Equal((1, 5L), (restart.Streak, restart.Entry.Points));

        var account = await _loyalty.GetAccountAsync(new GetAccountRequest { CustomerId = customerId });
        Assert.Equal((90L, 90L, 1), (account.Balance, account.GrowthValue, account.CheckInStreak));
    }

    [Fact]
    public async Task Check_in_days_follow_midnight_in_the_brands_time_zone()
    {
        var customerId = Guid.NewGuid().ToString();
        await _loyalty.OpenAccountAsync(new OpenAccountRequest { CustomerId = customerId });
        SetLocal(2026, 7, 1, hour: 23, minute: 30);   // 15:30 UTC
        await _loyalty.CheckInAsync(new CheckInRequest { CustomerId = customerId });
        SetLocal(2026, 7, 2, hour: 0, minute: 30);    // 16:30 UTC, the same UTC day but the next local day
        var next = await _loyalty.CheckInAsync(new CheckInRequest { CustomerId = customerId });
        Assert.Equal(2, next.Streak);
    }

    [Fact]
    public async Task Year_end_expiry_takes_the_oldest_lots_first_partially_and_never_twice()
    {
        var customerId = await _shoppers.NewCustomerAsync();
        SetLocal(2026, 3, 1);
        await EarnAsync(customerId, 100);
        SetLocal(2026, 9, 1);
        await EarnAsync(customerId, 50);
        SetLocal(2027, 2, 1);
        await EarnAsync(customerId, 30);
        // Spending 120 takes the March lot (100) and 20 of the September lot: 30 of 2026's points remain.
        await _loyalty.AdjustPointsAsync(new AdjustPointsRequest
        {
            CustomerId = customerId, Points = -120, Reason = "Redeemed a gift", IdempotencyKey = Guid.NewGuid().ToString(),
        });

        SetLocal(2027, 12, 15);
        var reminders = new List<ExpiringPoints>();
        var page = new ListExpiringPointsRequest { WithinDays = 30, PageSize = 200 };
        do
        {
            var response = await _loyalty.ListExpiringPointsAsync(page);
            reminders.AddRange(response.Accounts);
            page.PageToken = response.NextPageToken;
        } while (page.PageToken.Length > 0);
        var mine = Assert.Single(reminders, a => a.CustomerId == customerId);
        Assert.Equal((30L, new DateTime(2027, 12, 31, 16, 0, 0, DateTimeKind.Utc)), (mine.Points, mine.ExpiresAt.ToDateTime()));

        var expiry = _host.Services.GetRequiredService<PointsExpiry>();
        SetLocal(2027, 12, 31, hour: 23, minute: 59);
        Assert.Equal(0, await ExpireAsync(expiry, customerId)); // still 2027 in Shanghai

        SetLocal(2028, 1, 1, hour: 0, minute: 5);
        await expiry.ExpireDueAsync(CancellationToken.None);
        var account = await _loyalty.GetAccountAsync(new GetAccountRequest { CustomerId = customerId });
        Assert.Equal((30L, 180L), (account.Balance, account.GrowthValue)); // growth value is never lowered by expiry

        Assert.Equal(0, await ExpireAsync(expiry, customerId));
        var ledger = await _loyalty.ListLedgerAsync(new ListLedgerRequest { CustomerId = customerId });
        var expired = Assert.Single(ledger.Entries, e => e.Kind == Crm.Loyalty.V1.EntryKind.Expire);
        Assert.Equal((-30L, 0L), (expired.Points, expired.GrowthValue));
        Assert.True((await _loyalty.VerifyAccountAsync(new VerifyAccountRequest { CustomerId = customerId })).Consistent);

        // The 2027 lot lasts until the end of 2028.
        SetLocal(2028, 12, 31, hour: 23);
        Assert.Equal(0, await ExpireAsync(expiry, customerId));
        SetLocal(2029, 1, 1, hour: 1);
        Assert.Equal(30, await ExpireAsync(expiry, customerId));
        Assert.Equal(0, (await _loyalty.GetAccountAsync(new GetAccountRequest { CustomerId = customerId })).Balance);
    }

    /// <summary>
    /// The rule (loyalty.proto, BrandCalendar): points expire at the end of the calendar year after the year they were
    /// earned, in the brand's time zone (Asia/Shanghai). So 100 points from an order paid and earned on 2026-03-15 last
    /// until 2027-12-31 and expire at 2028-01-01 00:00 +08:00; 5 check-in points from 2027-02-10 expire at
    /// 2029-01-01 00:00 +08:00. Redeeming 5 in between must take them from the March 2026 order (the oldest), not from
    /// the check-in: on 2028-01-01, 95 expire and the 5 check-in points are left.
    /// </summary>
    [Fact]
    public async Task Spending_takes_the_oldest_points_first_whatever_their_source()
    {
        await using var expired = await EventProbe.StartAsync(suite.Infrastructure.RabbitMq!.AmqpUri, "Crm.Contracts:PointsExpired");
        var customerId = await _shoppers.NewCustomerAsync();
        SetLocal(2026, 3, 15);
        await EarnAsync(customerId, 100); // a real order: customer RecordOrder → OrderPaid → this loyalty instance

        SetLocal(2027, 2, 10);
        var checkIn = await _loyalty.CheckInAsync(new CheckInRequest { CustomerId = customerId });
        Assert.Equal(5, checkIn.Entry.Points);

        var reward = await _loyalty.UpsertRewardAsync(new UpsertRewardRequest { Reward = new Reward
        {
            Id = "cloth-" + Guid.NewGuid().ToString("N")[..12], Name = "Polishing cloth", Kind = RewardKind.Goods, PointsCost = 5, Stock = -1, Active = true,
        } });
        SetLocal(2027, 6, 1);
        var redemption = await _loyalty.RedeemAsync(new RedeemRequest { CustomerId = customerId, RewardId = reward.Id, IdempotencyKey = Guid.NewGuid().ToString() });
        Assert.Equal(100, redemption.BalanceAfter);

        var expiry = _host.Services.GetRequiredService<PointsExpiry>();
        SetLocal(2027, 12, 31, hour: 23, minute: 59);
        Assert.Equal(0, await ExpireAsync(expiry, customerId));
        SetLocal(2028, 1, 1, hour: 0, minute: 5);
        Assert.Equal(95, await ExpireAsync(expiry, customerId));
        var account = await _loyalty.GetAccountAsync(new GetAccountRequest { CustomerId = customerId });
        Assert.Equal((5L, 105L), (account.Balance, account.GrowthValue));
        await expired.WaitUntilAsync(() => expired.For("customerId", customerId).Count >= 1, TimeSpan.FromSeconds(15), "PointsExpired");
        Assert.Equal((95L, 5L), (expired.For("customerId", customerId)[0].Message.GetProperty("points").GetInt64(),
            expired.For("customerId", customerId)[0].Message.GetProperty("balance").GetInt64()));

        SetLocal(2029, 1, 1, hour: 0, minute: 5);
        Assert.Equal(5, await ExpireAsync(expiry, customerId));
        Assert.True((await _loyalty.VerifyAccountAsync(new VerifyAccountRequest { CustomerId = customerId })).Consistent);
    }

    /// <summary>
    /// A refund takes back its own order's points first, even when older points exist: 100 from March 2026 and 50 from
    /// February 2027, the 2027 order refunded in full → its own 50 go, and the 100 of 2026 expire whole on 2028-01-01.
    /// </summary>
    [Fact]
    public async Task A_refund_claws_back_its_own_orders_points_before_older_ones()
    {
        var customerId = await _shoppers.NewCustomerAsync();
        SetLocal(2026, 3, 15);
        await EarnAsync(customerId, 100);
        SetLocal(2027, 2, 10);
        var later = await EarnAsync(customerId, 50);

        await new CustomerService.CustomerServiceClient(suite.Customer.Channel).RefundOrderAsync(
            new RefundOrderRequest { RefundId = "RF-" + Guid.NewGuid(), OrderId = later.Id, RefundedAt = later.PaidAt });
        await _shoppers.WaitForAccountAsync(customerId, a => a.GrowthValue == 100, "the claw-back of the 2027 order");

        var expiry = _host.Services.GetRequiredService<PointsExpiry>();
        SetLocal(2028, 1, 1, hour: 0, minute: 5);
        Assert.Equal(100, await ExpireAsync(expiry, customerId));
        Assert.Equal(0, (await _loyalty.GetAccountAsync(new GetAccountRequest { CustomerId = customerId })).Balance);
        Assert.True((await _loyalty.VerifyAccountAsync(new VerifyAccountRequest { CustomerId = customerId })).Consistent);
    }

    /// <summary>
    /// Purchase points as members earn them: an order through the suite's customer service, earned by this instance at
    /// its fake time (the lot's earning time and expiry come from loyalty's clock), so the lot carries the order id.
    /// The order says it was paid at the fake time, unless that is still ahead of the real clock, which the customer
    /// service refuses (paid_at cannot be in the future): then a minute ago. Waits until the points are in.
    /// </summary>
    private async Task<Crm.Customer.V1.Order> EarnAsync(string customerId, long points)
    {
        long before;
        try { before = (await _loyalty.GetAccountAsync(new GetAccountRequest { CustomerId = customerId })).Balance; }
        catch (RpcException e) when (e.StatusCode == StatusCode.NotFound) { before = 0; } // CustomerRegistered still on its way
        var paidAt = new[] { _clock.GetUtcNow().UtcDateTime, DateTime.UtcNow.AddMinutes(-1) }.Min();
        var order = await _shoppers.PayAsync(customerId, points, paidAt);
        await _shoppers.WaitForAccountAsync(customerId, a => a.Balance == before + points, $"{points} points from the order");
        return order;
    }

    /// <summary>Runs the expiry and returns how many of this member's points it expired (other members' lots may be due too).</summary>
    private async Task<long> ExpireAsync(PointsExpiry expiry, string customerId)
    {
        var before = (await _loyalty.GetAccountAsync(new GetAccountRequest { CustomerId = customerId })).Balance;
        await expiry.ExpireDueAsync(CancellationToken.None);
        return before - (await _loyalty.GetAccountAsync(new GetAccountRequest { CustomerId = customerId })).Balance;
    }
}
