namespace Crm.Tickets.Sla;

/// <summary>
/// Business time of one calendar: working hours on working days in a time zone, minus holidays. Pure: SLA due times
/// and paused time are computed here and nowhere else. Example (9:00-18:00 Mon-Fri): 4 business hours from Friday
/// 17:30 are 30 minutes on Friday and 3.5 hours on Monday, so due Monday 12:30.
/// </summary>
public sealed class BusinessCalendar
{
    private const int MaxDays = 3660; // a calendar without a single working day must not loop forever
    private readonly TimeZoneInfo _zone;
    private readonly TimeSpan _open;
    private readonly TimeSpan _close;
    private readonly HashSet<DayOfWeek> _workDays;
    private readonly HashSet<DateOnly> _holidays;

    /// <param name="close">Time of day the working hours end; up to 24:00 (a day with no closing, e.g. a 24×7 desk).</param>
    public BusinessCalendar(TimeZoneInfo zone, TimeSpan open, TimeSpan close, IEnumerable<DayOfWeek> workDays, IEnumerable<DateOnly> holidays)
    {
        if (open < TimeSpan.Zero || close > TimeSpan.FromDays(1)) throw new ArgumentException("Working hours lie within 00:00-24:00.", nameof(close));
        if (close <= open) throw new ArgumentException("Working hours must end after they start.", nameof(close));
        _zone = zone;
        _open = open;
        _close = close;
        _workDays = [.. workDays];
        _holidays = [.. holidays];
        if (_workDays.Count == 0) throw new ArgumentException("Name at least one working day.", nameof(workDays));
    }

    public static BusinessCalendar From(CalendarOptions o) => new(
        TimeZoneInfo.FindSystemTimeZoneById(o.TimeZone), TimeOnly.Parse(o.WorkStart).ToTimeSpan(),
        o.WorkEnd.Trim() == "24:00" ? TimeSpan.FromDays(1) : TimeOnly.Parse(o.WorkEnd).ToTimeSpan(),
        o.WorkDays is { Count: > 0 } days ? days : CalendarOptions.DefaultWorkDays, o.Holidays.Select(DateOnly.Parse));

    private bool IsWorkingDay(DateOnly day) => _workDays.Contains(day.DayOfWeek) && !_holidays.Contains(day);

    /// <summary>The instant <paramref name="amount"/> of business time after <paramref name="startUtc"/> (UTC in, UTC out).</summary>
    public DateTime Add(DateTime startUtc, TimeSpan amount)
    {
        if (amount < TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(amount));
        var local = TimeZoneInfo.ConvertTimeFromUtc(DateTime.SpecifyKind(startUtc, DateTimeKind.Utc), _zone);
        var remaining = amount;
        var day = DateOnly.FromDateTime(local);
        var cursor = local.TimeOfDay;
        for (var i = 0; i < MaxDays; i++, day = day.AddDays(1), cursor = TimeSpan.Zero)
        {
            if (!IsWorkingDay(day)) continue;
            var from = cursor < _open ? _open : cursor;
            if (from >= _close) continue;
            var available = _close - from;
            if (remaining <= available)
            {
                // Nothing left to add outside working hours: the clock starts at the next opening.
                return ToUtc(day, from + remaining);
            }
            remaining -= available;
        }
        throw new InvalidOperationException("No working time within ten years.");
    }

    /// <summary>Business time between two instants (zero if <paramref name="toUtc"/> is not after <paramref name="fromUtc"/>).</summary>
    public TimeSpan Between(DateTime fromUtc, DateTime toUtc)
    {
        if (toUtc <= fromUtc) return TimeSpan.Zero;
        var from = TimeZoneInfo.ConvertTimeFromUtc(DateTime.SpecifyKind(fromUtc, DateTimeKind.Utc), _zone);
        var to = TimeZoneInfo.ConvertTimeFromUtc(DateTime.SpecifyKind(toUtc, DateTimeKind.Utc), _zone);
        var total = TimeSpan.Zero;
        for (var day = DateOnly.FromDateTime(from); day <= DateOnly.FromDateTime(to); day = day.AddDays(1))
        {
            if (!IsWorkingDay(day)) continue;
            var start = day == DateOnly.FromDateTime(from) ? Max(from.TimeOfDay, _open) : _open;
            var end = day == DateOnly.FromDateTime(to) ? Min(to.TimeOfDay, _close) : _close;
            if (end > start) total += end - start;
        }
        return total;
    }

    private DateTime ToUtc(DateOnly day, TimeSpan timeOfDay) =>
        TimeZoneInfo.ConvertTimeToUtc(DateTime.SpecifyKind(day.ToDateTime(TimeOnly.MinValue) + timeOfDay, DateTimeKind.Unspecified), _zone);

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;
    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;
}
