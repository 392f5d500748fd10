using Crm.Campaigns.Analytics;

namespace Crm.UnitTests.Campaigns;

public class RecomputeScheduleTests
{
    private static readonly TimeZoneInfo Shanghai = TimeZoneInfo.FindSystemTimeZoneById("Asia/Shanghai");

    [Fact]
    public void The_nightly_run_is_at_three_in_the_morning_brand_time_today_or_tomorrow()
    {
        var at = new TimeOnly(3, 0);
        // 02:59 on 27 November in Shanghai is 18:59 UTC on the 26th: the run is a minute later.
        Assert.Equal(new DateTimeOffset(2026, 11, 26, 19, 0, 0, TimeSpan.Zero),
            RecomputeSchedule.NextRun(new DateTimeOffset(2026, 11, 26, 18, 59, 0, TimeSpan.Zero), at, Shanghai));
        // Exactly at 03:00 it has just run: the next one is a day later.
        Assert.Equal(new DateTimeOffset(2026, 11, 27, 19, 0, 0, TimeSpan.Zero),
            RecomputeSchedule.NextRun(new DateTimeOffset(2026, 11, 26, 19, 0, 0, TimeSpan.Zero), at, Shanghai));
    }

    [Fact]
    public void A_time_skipped_by_daylight_saving_runs_an_hour_later()
    {
        var berlin = TimeZoneInfo.FindSystemTimeZoneById("Europe/Berlin");
        // 29 March 2026: clocks jump from 02:00 to 03:00 CET→CEST, so 02:30 does not exist; the run is at 03:30 CEST = 01:30 UTC.
        Assert.Equal(new DateTimeOffset(2026, 3, 29, 1, 30, 0, TimeSpan.Zero),
            RecomputeSchedule.NextRun(new DateTimeOffset(2026, 3, 28, 23, 0, 0, TimeSpan.Zero), new TimeOnly(2, 30), berlin));
    }
}
