using Crm.Tickets;
using Crm.Tickets.Sla;
using Microsoft.Extensions.Options;

namespace Crm.UnitTests.Tickets;

/// <summary>Business time on a 9:00-18:00 Monday-Friday calendar in Shanghai (UTC+8, no daylight saving).</summary>
public class BusinessCalendarTests
{
    private static readonly TimeSpan Shanghai = TimeSpan.FromHours(8);

    private static BusinessCalendar Calendar(params string[] holidays) =>
        BusinessCalendar.From(new CalendarOptions { TimeZone = "Asia/Shanghai", WorkStart = "09:00", WorkEnd = "18:00", Holidays = [.. holidays] });

    /// <summary>Local Shanghai time as the UTC DateTime the calendar takes (2026-11-27 is a Friday).</summary>
    private static DateTime Local(int month, int day, int hour, int minute = 0) =>
        new DateTimeOffset(2026, month, day, hour, minute, 0, Shanghai).UtcDateTime;

    [Fact]
    public void Four_business_hours_from_Friday_17_30_are_due_Monday_12_30()
    {
        Assert.Equal(DayOfWeek.Friday, new DateTime(2026, 11, 27).DayOfWeek);
        var due = Calendar().Add(Local(11, 27, 17, 30), TimeSpan.FromHours(4));
        Assert.Equal(Local(11, 30, 12, 30), due);
        Assert.Equal(new DateTime(2026, 11, 30, 4, 30, 0, DateTimeKind.Utc), due); // 12:30 +08:00
    }

    [Fact]
    public void Two_business_hours_paused_move_the_due_time_to_14_30()
    {
        var calendar = Calendar();
        var paused = calendar.Between(Local(11, 30, 9, 0), Local(11, 30, 11, 0));
        Assert.Equal(TimeSpan.FromHours(2), paused);
        Assert.Equal(Local(11, 30, 14, 30), calendar.Add(Local(11, 27, 17, 30), TimeSpan.FromHours(4) + paused));
    }

    [Fact]
    public void A_pause_over_the_weekend_counts_only_working_hours()
    {
        // Friday 17:00 to Monday 10:00: one hour on Friday, one on Monday.
        Assert.Equal(TimeSpan.FromHours(2), Calendar().Between(Local(11, 27, 17, 0), Local(11, 30, 10, 0)));
        // Saturday to Sunday: nothing.
        Assert.Equal(TimeSpan.Zero, Calendar().Between(Local(11, 28, 9, 0), Local(11, 29, 17, 0)));
        // Backwards: nothing.
        Assert.Equal(TimeSpan.Zero, Calendar().Between(Local(11, 30, 10, 0), Local(11, 27, 17, 0)));
    }

    [Fact]
    public void The_clock_starts_at_the_next_opening_outside_working_hours()
    {
        var calendar = Calendar();
        Assert.Equal(Local(11, 30, 10, 0), calendar.Add(Local(11, 30, 7, 0), TimeSpan.FromHours(1)));    // Monday before opening
        Assert.Equal(Local(11, 30, 9, 30), calendar.Add(Local(11, 28, 10, 0), TimeSpan.FromMinutes(30))); // Saturday
        Assert.Equal(Local(12, 1, 9, 15), calendar.Add(Local(11, 30, 19, 0), TimeSpan.FromMinutes(15)));  // Monday evening
    }

    [Fact]
    public void A_target_that_uses_the_whole_day_is_due_at_closing_not_the_next_morning()
    {
        Assert.Equal(Local(11, 30, 18, 0), Calendar().Add(Local(11, 30, 9, 0), TimeSpan.FromHours(9)));
        Assert.Equal(Local(12, 1, 9, 1), Calendar().Add(Local(11, 30, 9, 0), TimeSpan.FromHours(9) + TimeSpan.FromMinutes(1)));
    }

    [Fact]
    public void Holidays_are_skipped()
    {
        // Monday 2026-11-30 a holiday: Friday 17:30 + 4 h is due Tuesday 12:30.
        var calendar = Calendar("2026-11-30");
        Assert.Equal(Local(12, 1, 12, 30), calendar.Add(Local(11, 27, 17, 30), TimeSpan.FromHours(4)));
        Assert.Equal(TimeSpan.FromHours(1.5), calendar.Between(Local(11, 27, 17, 30), Local(12, 1, 10, 0)));
    }

    [Fact]
    public void A_multi_day_target_counts_nine_hours_a_working_day()
    {
        // 27 business hours from Monday 9:00 = three full days: due Wednesday 18:00.
        Assert.Equal(Local(12, 2, 18, 0), Calendar().Add(Local(11, 30, 9, 0), TimeSpan.FromHours(27)));
    }

    [Fact]
    public void The_working_days_and_time_zone_are_configuration()
    {
        // A Saturday shop in UTC, 10:00-16:00 Tuesday to Saturday: Friday 15:00 + 3 h → Saturday 12:00.
        var calendar = BusinessCalendar.From(new CalendarOptions
        {
            TimeZone = "UTC", WorkStart = "10:00", WorkEnd = "16:00",
            WorkDays = [DayOfWeek.Tuesday, DayOfWeek.Wednesday, DayOfWeek.Thursday, DayOfWeek.Friday, DayOfWeek.Saturday],
        });
        Assert.Equal(new DateTime(2026, 11, 28, 12, 0, 0, DateTimeKind.Utc),
            calendar.Add(new DateTime(2026, 11, 27, 15, 0, 0, DateTimeKind.Utc), TimeSpan.FromHours(3)));
        // Saturday 15:00 + 2 h → Tuesday 11:00 (Sunday and Monday closed).
        Assert.Equal(new DateTime(2026, 12, 1, 11, 0, 0, DateTimeKind.Utc),
            calendar.Add(new DateTime(2026, 11, 28, 15, 0, 0, DateTimeKind.Utc), TimeSpan.FromHours(2)));
    }

    [Fact]
    public void WorkEnd_24_00_on_every_day_is_a_24x7_desk()
    {
        // 00:00-24:00 Monday to Sunday in UTC: business time is wall time, over midnight and the weekend alike.
        var calendar = BusinessCalendar.From(new CalendarOptions
        {
            TimeZone = "UTC", WorkStart = "00:00", WorkEnd = "24:00", WorkDays = [.. Enum.GetValues<DayOfWeek>()],
        });
        var saturday = new DateTime(2026, 11, 28, 23, 59, 50, DateTimeKind.Utc);
        Assert.Equal(saturday.AddSeconds(15), calendar.Add(saturday, TimeSpan.FromSeconds(15)));
        Assert.Equal(saturday.AddMinutes(2_700), calendar.Add(saturday, TimeSpan.FromMinutes(2_700))); // 45 h, two midnights
        Assert.Equal(TimeSpan.FromHours(49), calendar.Between(saturday, saturday.AddHours(49)));
        Assert.False(TicketsOptions.IsValid(new TicketsOptions { Calendar = new CalendarOptions { WorkEnd = "24:30" } }));
    }

    [Fact]
    public void Working_hours_are_local_across_a_daylight_saving_change()
    {
        // Berlin leaves summer time on Sunday 2026-10-25: Friday 17:30 CEST (15:30 UTC) + 4 h → Monday 12:30 CET (11:30 UTC).
        var calendar = BusinessCalendar.From(new CalendarOptions { TimeZone = "Europe/Berlin" });
        Assert.Equal(new DateTime(2026, 10, 26, 11, 30, 0, DateTimeKind.Utc),
            calendar.Add(new DateTime(2026, 10, 23, 15, 30, 0, DateTimeKind.Utc), TimeSpan.FromHours(4)));
        Assert.Equal(TimeSpan.FromHours(4), calendar.Between(new DateTime(2026, 10, 23, 15, 30, 0, DateTimeKind.Utc),
            new DateTime(2026, 10, 26, 11, 30, 0, DateTimeKind.Utc)));
    }

    [Fact]
    public void A_configuration_without_a_policy_for_every_priority_or_with_a_bad_calendar_is_refused()
    {
        Assert.True(TicketsOptions.IsValid(new TicketsOptions()));
        Assert.False(TicketsOptions.IsValid(new TicketsOptions
        {
            SlaPolicies = [new SlaPolicyOptions { Priority = "urgent", FirstResponseMinutes = 10, ResolutionMinutes = 60 }],
        }));
        Assert.False(TicketsOptions.IsValid(new TicketsOptions { Calendar = new CalendarOptions { TimeZone = "Mars/Olympus" } }));
        Assert.False(TicketsOptions.IsValid(new TicketsOptions { Calendar = new CalendarOptions { WorkStart = "18:00", WorkEnd = "09:00" } }));
    }

    [Fact]
    public void Higher_tiers_get_faster_targets()
    {
        var policies = new SlaPolicies(Options.Create(new TicketsOptions()));
        Assert.Equal(new SlaTargets(15, 240), policies.For(4, "S6"));
        Assert.Equal(new SlaTargets(30, 480), policies.For(4, "S2"));
        Assert.Equal(new SlaTargets(30, 480), policies.For(4, null));
        Assert.Equal(new SlaTargets(480, 2700), policies.For(1, "S6"));
    }

    /// <summary>OpenTicket picks among these by the tier it reads: each named tier, then the targets for any other tier last.</summary>
    [Fact]
    public void Choices_list_each_named_tier_then_the_default_and_agree_with_For()
    {
        var policies = new SlaPolicies(Options.Create(new TicketsOptions()));
        var (tiers, targets) = policies.Choices(4);
        Assert.Equal(["S5", "S6"], tiers);
        Assert.Equal([new SlaTargets(15, 240), new SlaTargets(15, 240), new SlaTargets(30, 480)], targets);
        var (lowTiers, lowTargets) = policies.Choices(1);
        Assert.Empty(lowTiers);
        Assert.Equal([new SlaTargets(480, 2700)], lowTargets);
        var (highTiers, highTargets) = policies.Choices(3);
        Assert.Equal(policies.For(3, "S6"), highTargets[Array.IndexOf(highTiers, "S6")]);
        Assert.Equal(policies.For(3, "S1"), highTargets[^1]);
        Assert.Equal(policies.For(3, null), highTargets[^1]);
    }
}
