using Crm.Loyalty;
using Crm.Loyalty.Accounts;
using Crm.Loyalty.Activities;
using Crm.Loyalty.Earning;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Crm.UnitTests.Loyalty;

public class TierTableTests
{
    private readonly TierTable _tiers = new(LoyaltyOptions.DefaultTiers);

    [Theory]
    [InlineData(0, "S1")]
    [InlineData(8_000, "S1")]
    [InlineData(8_001, "S2")]
    [InlineData(80_000, "S2")]
    [InlineData(80_001, "S3")]
    [InlineData(180_001, "S4")]
    [InlineData(580_000, "S4")]
    [InlineData(580_001, "S5")]
    [InlineData(980_000, "S5")]
    [InlineData(980_001, "S6")]
    [InlineData(5_000_000, "S6")]
    public void Growth_value_sets_the_tier_at_the_source_design_thresholds(long growth, string tier) =>
        Assert.Equal(tier, _tiers.For(growth).Code);

    [Fact]
    public void Next_tier_and_what_it_still_needs()
    {
        Assert.Equal(("S2", 8_001L - 7_999), (_tiers.Next(7_999)!.Code, _tiers.Next(7_999)!.MinGrowthValue - 7_999));
        Assert.Null(_tiers.Next(980_001));
    }
}

public class EarningRulesTests
{
    [Theory]
    [InlineData("10000.50", 10_000)]
    [InlineData("0.99", 0)]
    [InlineData("199.00", 199)]
    public void One_point_per_yuan_paid_rounded_down(string paid, long points) =>
        Assert.Equal(points, OrderPaidConsumer.PointsFor(decimal.Parse(paid)));

    [Fact]
    public void An_order_earns_its_points_as_growth_value_under_a_key_of_its_own()
    {
        // Both the one-by-one and the batch consumer earn through this change, so an order is keyed alike either way.
        var orderId = Guid.Parse("0b7a1d8e-6c1f-4d7e-9a55-3f1c2b9d8e01");
        var change = OrderPaidConsumer.ChangeFor(new Crm.Contracts.OrderPaid(orderId, Guid.NewGuid(), "ERP-1", "SZ-01", "store", [], 10_000.50m,
            DateTimeOffset.UtcNow));
        Assert.Equal((EntryKind.Earn, "order", orderId.ToString(), 10_000L, 10_000L, $"order:{orderId}", orderId),
            (change.Kind, change.Source, change.SourceRef, change.Points, change.GrowthValue, change.IdempotencyKey, change.OrderId));
    }

    [Fact]
    public void Refunds_leave_an_order_exactly_floor_of_what_stays_paid()
    {
        // 100.75 paid earned 100. Refunding 0.75 leaves 100.00 paid: nothing to claw back.
        Assert.Equal(0, OrderRefundedConsumer.ClawBackFor(100, 0, 100.75m, 0.75m));
        // A further 50.50 (total 51.25) leaves 49.50 paid, worth 49: claw back 51.
        Assert.Equal(51, OrderRefundedConsumer.ClawBackFor(100, 0, 100.75m, 51.25m));
        // The same refunds arriving the other way round: the larger total first claws 51, the smaller then nothing.
        Assert.Equal(0, OrderRefundedConsumer.ClawBackFor(100, 51, 100.75m, 0.75m));
        // Refunding the rest takes back exactly the remaining 49.
        Assert.Equal(49, OrderRefundedConsumer.ClawBackFor(100, 51, 100.75m, 100.75m));
    }
}

public class CheckInRulesTests
{
    private static readonly CheckInOptions Rules = new() { DailyPoints = 5, StreakBonusDays = 7, StreakBonusPoints = 50 };
    private static readonly DateOnly Today = new(2026, 11, 23);

    [Fact]
    public void The_seventh_day_in_a_row_earns_the_bonus() =>
        Assert.Equal((7, 55L, 50L), CheckIns.Score(Today, Today.AddDays(-1), 6, Rules));

    [Fact]
    public void A_missed_day_restarts_the_streak() =>
        Assert.Equal((1, 5L, 0L), CheckIns.Score(Today, Today.AddDays(-2), 6, Rules));

    [Fact]
    public void The_fourteenth_day_earns_it_again() =>
        Assert.Equal((14, 55L, 50L), CheckIns.Score(Today, Today.AddDays(-1), 13, Rules));
}

public class BrandCalendarTests
{
    private static BrandCalendar At(DateTimeOffset now) =>
        new(Options.Create(new LoyaltyOptions()), new FakeTimeProvider(now));

    [Fact]
    public void Points_last_until_the_end_of_next_year_in_Shanghai()
    {
        var calendar = At(DateTimeOffset.UtcNow);
        // Earned 2026-05-01 → usable through 2027-12-31 local; expire at 2028-01-01 00:00 +08:00.
        Assert.Equal(new DateTime(2027, 12, 31, 16, 0, 0, DateTimeKind.Utc), calendar.ExpiresAt(new DateTime(2026, 5, 1, 4, 0, 0, DateTimeKind.Utc)));
        // 2026-12-31 17:00 UTC is already 2027-01-01 in Shanghai: those points last a year longer.
        Assert.Equal(new DateTime(2028, 12, 31, 16, 0, 0, DateTimeKind.Utc), calendar.ExpiresAt(new DateTime(2026, 12, 31, 17, 0, 0, DateTimeKind.Utc)));
    }

    [Fact]
    public void The_day_turns_at_midnight_Shanghai_time() =>
        Assert.Equal(new DateOnly(2026, 11, 24), At(new DateTimeOffset(2026, 11, 23, 16, 30, 0, TimeSpan.Zero)).Today());
}
