using Crm.Campaigns.Marketing;

namespace Crm.UnitTests.Campaigns;

public class CronTests
{
    private static DateTime At(int y, int mo, int d, int h, int mi) => new(y, mo, d, h, mi, 0);

    [Theory]
    [InlineData("0 9 * * *", "2026-11-27T09:00", true)]
    [InlineData("0 9 * * *", "2026-11-27T09:01", false)]
    [InlineData("*/15 8-18 * * *", "2026-11-27T18:45", true)]
    [InlineData("*/15 8-18 * * *", "2026-11-27T19:00", false)]
    [InlineData("0 10 * * 1-5", "2026-11-28T10:00", false)] // a Saturday
    [InlineData("0 10 * * 1-5", "2026-11-27T10:00", true)]  // a Friday
    [InlineData("0 10 * * 0", "2026-11-29T10:00", true)]    // Sunday as 0…
    [InlineData("0 10 * * 7", "2026-11-29T10:00", true)]    // …and as 7
    [InlineData("30 20 1,15 * *", "2026-12-15T20:30", true)]
    [InlineData("30 20 1,15 * *", "2026-12-14T20:30", false)]
    [InlineData("0 0 1 1 *", "2027-01-01T00:00", true)]
    [InlineData("5/20 * * * *", "2026-11-27T03:45", true)]   // 5, 25, 45
    [InlineData("5/20 * * * *", "2026-11-27T03:40", false)]
    // Both day fields restricted: either one makes the day due (the 13th, or any Friday).
    [InlineData("0 12 13 * 5", "2026-11-13T12:00", true)]
    [InlineData("0 12 13 * 5", "2026-11-20T12:00", true)]
    [InlineData("0 12 13 * 5", "2026-11-19T12:00", false)]
    public void Matches(string cron, string local, bool due) =>
        Assert.Equal(due, Cron.Parse(cron).Matches(DateTime.Parse(local, System.Globalization.CultureInfo.InvariantCulture)));

    [Theory]
    [InlineData("0 9 * *", "five fields")]
    [InlineData("60 9 * * *", "minute")]
    [InlineData("0 24 * * *", "hour")]
    [InlineData("0 9 0 * *", "day-of-month")]
    [InlineData("0 9 * 13 *", "month")]
    [InlineData("0 9 * * 8", "day-of-week")]
    [InlineData("0 9 * * MON", "day-of-week")]
    [InlineData("*/0 9 * * *", "minute")]
    [InlineData("0 18-8 * * *", "hour")]
    public void Invalid_expressions_name_the_field(string cron, string field)
    {
        Assert.Null(Cron.TryParse(cron, out var error));
        Assert.Contains(field, error);
    }

    [Fact]
    public void Previous_is_the_latest_due_minute_so_a_gap_gives_one_occurrence_not_one_per_missed_time()
    {
        var daily = Cron.Parse("0 9 * * *");
        var since = At(2026, 11, 1, 0, 0);
        // Five days without a tick: only the latest 09:00 is due.
        Assert.Equal(At(2026, 11, 25, 9, 0), daily.Previous(At(2026, 11, 25, 12, 0), since));
        Assert.Equal(At(2026, 11, 25, 9, 0), daily.Previous(At(2026, 11, 25, 9, 0), since));
        Assert.Equal(At(2026, 11, 24, 9, 0), daily.Previous(At(2026, 11, 25, 8, 59), since));
        // Nothing due since the campaign started running.
        Assert.Null(daily.Previous(At(2026, 11, 25, 8, 59), At(2026, 11, 24, 9, 1)));

        // The last business day's 18:30 before a Monday morning is Friday's.
        Assert.Equal(At(2026, 11, 27, 18, 30), Cron.Parse("30 18 * * 1-5").Previous(At(2026, 11, 30, 8, 0), since));
        // Month boundaries: the 31st of the latest month that has one.
        Assert.Equal(At(2026, 10, 31, 0, 0), Cron.Parse("0 0 31 * *").Previous(At(2026, 11, 30, 23, 59), At(2026, 1, 1, 0, 0)));
        // A yearly one on 1 January.
        Assert.Equal(At(2026, 1, 1, 8, 0), Cron.Parse("0 8 1 1 *").Previous(At(2026, 11, 30, 0, 0), At(2025, 6, 1, 0, 0)));
        // 29 February only: the last one was 2024 (none between 2025 and 2026-11).
        Assert.Null(Cron.Parse("0 9 29 2 *").Previous(At(2026, 11, 30, 0, 0), At(2025, 1, 1, 0, 0)));
        Assert.Equal(At(2024, 2, 29, 9, 0), Cron.Parse("0 9 29 2 *").Previous(At(2026, 11, 30, 0, 0), At(2024, 1, 1, 0, 0)));
    }

    [Fact]
    public void Quiet_hours_from_21_to_9_brand_time_defer_until_9()
    {
        var shanghai = TimeZoneInfo.FindSystemTimeZoneById("Asia/Shanghai");
        var quiet = new QuietHours("21:00", "09:00", shanghai);
        DateTime Utc(int d, int h, int m) => new(2026, 11, d, h, m, 0, DateTimeKind.Utc);
        // 20:59 local (12:59 UTC): not quiet. 21:00 local: until 09:00 next morning (01:00 UTC).
        Assert.Null(quiet.NotBefore(Utc(26, 12, 59)));
        Assert.Equal(Utc(27, 1, 0), quiet.NotBefore(Utc(26, 13, 0)));
        // 00:00:30 local on the 27th (16:00 UTC on the 26th): the same 09:00.
        Assert.Equal(Utc(27, 1, 0), quiet.NotBefore(Utc(26, 16, 0)));
        // 09:00 local sharp is allowed.
        Assert.Null(quiet.NotBefore(Utc(27, 1, 0)));
        // A window within one day, and none at all.
        Assert.Equal(Utc(27, 6, 0), new QuietHours("12:00", "14:00", shanghai).NotBefore(Utc(27, 5, 0)));
        Assert.Null(new QuietHours("", "", shanghai).NotBefore(Utc(26, 16, 0)));
    }
}
