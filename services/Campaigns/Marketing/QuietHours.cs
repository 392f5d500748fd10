using System.Globalization;

namespace Crm.Campaigns.Marketing;

/// <summary>
/// No campaign message between <c>Start</c> and <c>End</c> in the brand's time zone (a window may cross midnight, e.g.
/// 21:00–09:00). A send that falls in them is deferred, not dropped: <see cref="NotBefore"/> says when it may go.
/// </summary>
public sealed class QuietHours
{
    private readonly TimeOnly? _start, _end;
    private readonly TimeZoneInfo _zone;

    /// <param name="start">"HH:mm", or empty: no quiet hours.</param>
    public QuietHours(string? start, string? end, TimeZoneInfo zone)
    {
        _zone = zone;
        if (string.IsNullOrWhiteSpace(start) || string.IsNullOrWhiteSpace(end)) return;
        _start = TimeOnly.ParseExact(start, "HH:mm", CultureInfo.InvariantCulture);
        _end = TimeOnly.ParseExact(end, "HH:mm", CultureInfo.InvariantCulture);
        if (_start == _end) _start = _end = null;
    }

    public static bool Valid(string? value) =>
        string.IsNullOrWhiteSpace(value) || TimeOnly.TryParseExact(value, "HH:mm", CultureInfo.InvariantCulture, DateTimeStyles.None, out _);

    /// <returns>Null outside quiet hours; inside them, the UTC instant they end.</returns>
    public DateTime? NotBefore(DateTime nowUtc)
    {
        if (_start is not { } start || _end is not { } end) return null;
        var local = TimeZoneInfo.ConvertTimeFromUtc(DateTime.SpecifyKind(nowUtc, DateTimeKind.Utc), _zone);
        var time = TimeOnly.FromDateTime(local);
        var quiet = start < end ? time >= start && time < end : time >= start || time < end;
        if (!quiet) return null;
        var endLocal = local.Date + end.ToTimeSpan();
        if (endLocal <= local) endLocal = endLocal.AddDays(1);
        while (_zone.IsInvalidTime(endLocal)) endLocal = endLocal.AddHours(1);
        return TimeZoneInfo.ConvertTimeToUtc(DateTime.SpecifyKind(endLocal, DateTimeKind.Unspecified), _zone);
    }
}
