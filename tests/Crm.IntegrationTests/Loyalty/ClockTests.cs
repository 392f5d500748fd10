using Crm.IntegrationTests.Support;
using Crm.Loyalty.Accounts;
using Crm.Loyalty.Expiry;
using Crm.Loyalty.V1;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using EntryKind = Crm.Loyalty.Accounts.EntryKind;

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

    public async Task InitializeAsync()
    {
        _host = await ServiceHost.StartAsync(
            args => Crm.Loyalty.LoyaltyApp.Build(args, services => services.AddSingleton<TimeProvider>(_clock)),
            suite.Infrastructure, "loyalty-clock", "loyaltyclockdb", connectionName: "loyaltydb");
        _loyalty = new LoyaltyService.LoyaltyServiceClient(_host.Channel);
    }

    public async Task DisposeAsync() => await _host.DisposeAsync();

    private void SetLocal(int year, int month, int day, int hour = 10, int minute = 0) =>
        _clock.SetUtcNow(new DateTimeOffset(year, month, day, hour, minute, 0, Shanghai));

    [Fact]
    public async Task Check_in_streak_with_a_bonus_on_day_7_a_rejected_second_check_in_and_a_missed_day()
    {
        var customerId = Guid.NewGuid().ToString();
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
        SetLocal(2026, 7, 1, hour: 23, minute: 30);   // 15:30 UTC
        await _loyalty.CheckInAsync(new CheckInRequest { CustomerId = customerId });
        SetLocal(2026, 7, 2, hour: 0, minute: 30);    // 16:30 UTC, the same UTC day but the next local day
        var next = await _loyalty.CheckInAsync(new CheckInRequest { CustomerId = customerId });
        Assert.Equal(2, next.Streak);
    }

    [Fact]
    public async Task Year_end_expiry_takes_the_oldest_lots_first_partially_and_never_twice()
    {
        var customerId = Guid.NewGuid();
        SetLocal(2026, 3, 1);
        await EarnAsync(customerId, 100, "2026-03");
        SetLocal(2026, 9, 1);
        await EarnAsync(customerId, 50, "2026-09");
        SetLocal(2027, 2, 1);
        await EarnAsync(customerId, 30, "2027-02");
        // Spending 120 takes the March lot (100) and 20 of the September lot: 30 of 2026's points remain.
        await _loyalty.AdjustPointsAsync(new AdjustPointsRequest
        {
            CustomerId = customerId.ToString(), Points = -120, Reason = "Redeemed a gift", IdempotencyKey = Guid.NewGuid().ToString(),
        });

        SetLocal(2027, 12, 15);
        var reminders = await _loyalty.ListExpiringPointsAsync(new ListExpiringPointsRequest { WithinDays = 30, PageSize = 200 });
        var mine = Assert.Single(reminders.Accounts, a => a.CustomerId == customerId.ToString());
        Assert.Equal((30L, new DateTime(2027, 12, 31, 16, 0, 0, DateTimeKind.Utc)), (mine.Points, mine.ExpiresAt.ToDateTime()));

        var expiry = _host.Services.GetRequiredService<PointsExpiry>();
        SetLocal(2027, 12, 31, hour: 23, minute: 59);
        Assert.Equal(0, await expiry.ExpireDueAsync(CancellationToken.None)); // still 2027 in Shanghai

        SetLocal(2028, 1, 1, hour: 0, minute: 5);
        await expiry.ExpireDueAsync(CancellationToken.None);
        var account = await _loyalty.GetAccountAsync(new GetAccountRequest { CustomerId = customerId.ToString() });
        Assert.Equal((30L, 180L), (account.Balance, account.GrowthValue)); // growth value is never lowered by expiry

        Assert.Equal(0, await expiry.ExpireDueAsync(CancellationToken.None));
        var ledger = await _loyalty.ListLedgerAsync(new ListLedgerRequest { CustomerId = customerId.ToString() });
        var expired = Assert.Single(ledger.Entries, e => e.Kind == Crm.Loyalty.V1.EntryKind.Expire);
        Assert.Equal((-30L, 0L), (expired.Points, expired.GrowthValue));
        Assert.True((await _loyalty.VerifyAccountAsync(new VerifyAccountRequest { CustomerId = customerId.ToString() })).Consistent);

        // The 2027 lot lasts until the end of 2028.
        SetLocal(2028, 12, 31, hour: 23);
        Assert.Equal(0, await expiry.ExpireDueAsync(CancellationToken.None));
        SetLocal(2029, 1, 1, hour: 1);
        Assert.Equal(30, await expiry.ExpireDueAsync(CancellationToken.None));
        Assert.Equal(0, (await _loyalty.GetAccountAsync(new GetAccountRequest { CustomerId = customerId.ToString() })).Balance);
    }

    /// <summary>Purchase-style points (points and growth) at the fake clock's time, straight through the ledger.</summary>
    private async Task EarnAsync(Guid customerId, long points, string reference)
    {
        var accounts = _host.Services.GetRequiredService<AccountTransactions>();
        var ledger = _host.Services.GetRequiredService<Ledger>();
        await accounts.RunAsync(customerId, (tx, account) => ledger.EarnAsync(tx, account,
            new Change(EntryKind.Earn, "order", reference, points, points, $"test:{customerId}:{reference}"), CancellationToken.None), CancellationToken.None);
    }
}
