namespace Crm.Campaigns.Marketing;

/// <summary>
/// A five-field cron expression (minute hour day-of-month month day-of-week) over local times, with <c>*</c>, lists
/// (<c>1,15</c>), ranges (<c>1-5</c>) and steps (<c>*/15</c>, <c>8-18/2</c>). Day of week 0-7 with Sunday 0 and 7.
/// As in the classic cron: when both day fields are restricted, a day matching either is due.
/// </summary>
public sealed class Cron
{
    private readonly bool[] _minutes, _hours, _days, _months, _weekdays;
    private readonly bool _anyDay, _anyWeekday;

    private Cron(bool[] minutes, bool[] hours, bool[] days, bool[] months, bool[] weekdays, bool anyDay, bool anyWeekday) =>
        (_minutes, _hours, _days, _months, _weekdays, _anyDay, _anyWeekday) = (minutes, hours, days, months, weekdays, anyDay, anyWeekday);

    /// <returns>The expression, or null with <paramref name="error"/> saying which field is wrong.</returns>
    public static Cron? TryParse(string text, out string error)
    {
        var fields = text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        error = "";
        if (fields.Length != 5)
        {
            error = "must have five fields (minute hour day-of-month month day-of-week), in the brand's time zone.";
            return null;
        }
        string[] names = ["minute", "hour", "day-of-month", "month", "day-of-week"];
        (int Min, int Max)[] ranges = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
        var sets = new bool[5][];
        for (var i = 0; i < 5; i++)
        {
            sets[i] = Field(fields[i], ranges[i].Min, ranges[i].Max)!;
            if (sets[i] is null)
            {
                error = $"has an invalid {names[i]} field (allowed: *, numbers {ranges[i].Min}-{ranges[i].Max}, lists a,b, ranges a-b, steps /n).";
                return null;
            }
        }
        if (sets[4][7]) sets[4][0] = true;
        return new Cron(sets[0], sets[1], sets[2], sets[3], sets[4], fields[2] == "*", fields[4] == "*");
    }

    public static Cron Parse(string text) => TryParse(text, out var error) ?? throw new FormatException($"Cron '{text}' {error}");

    private static bool[]? Field(string field, int min, int max)
    {
        var set = new bool[max + 1];
        foreach (var part in field.Split(','))
        {
            var step = 1;
            var range = part;
            var slash = part.IndexOf('/');
            if (slash >= 0)
            {
                if (!int.TryParse(part[(slash + 1)..], out step) || step < 1) return null;
                range = part[..slash];
            }
            int from, to;
            if (range == "*") (from, to) = (min, max);
            else if (range.IndexOf('-') is var dash and > 0)
            {
                if (!int.TryParse(range[..dash], out from) || !int.TryParse(range[(dash + 1)..], out to)) return null;
            }
            else
            {
                if (!int.TryParse(range, out from)) return null;
                to = slash >= 0 ? max : from; // "5/15" = from 5 every 15
            }
            if (from < min || to > max || from > to) return null;
            for (var v = from; v <= to; v += step) set[v] = true;
        }
        return set;
    }

    public bool Matches(DateTime local) =>
        _minutes[local.Minute] && _hours[local.Hour] && _months[local.Month] && DayMatches(local);

    private bool DayMatches(DateTime local)
    {
        bool day = _days[local.Day], weekday = _weekdays[(int)local.DayOfWeek];
        if (_anyDay || _anyWeekday) return day && weekday;
        return day || weekday;
    }

    /// <summary>The latest due minute at or before <paramref name="local"/> and not before <paramref name="notBefore"/>, or null.</summary>
    public DateTime? Previous(DateTime local, DateTime notBefore)
    {
        var t = new DateTime(local.Year, local.Month, local.Day, local.Hour, local.Minute, 0, local.Kind);
        while (t >= notBefore)
        {
            if (!_months[t.Month]) t = new DateTime(t.Year, t.Month, 1, 0, 0, 0, t.Kind).AddMinutes(-1);
            else if (!DayMatches(t)) t = t.Date.AddMinutes(-1);
            else if (!_hours[t.Hour]) t = t.Date.AddHours(t.Hour).AddMinutes(-1);
            else if (!_minutes[t.Minute]) t = t.AddMinutes(-1);
            else return t;
        }
        return null;
    }
}
