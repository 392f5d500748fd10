using Microsoft.Extensions.Options;

namespace Crm.Loyalty.Accounts;

/// <summary>Days and years as the brand's members live them: check-ins and expiry follow the brand's time zone.</summary>
public sealed class BrandCalendar(IOptions<LoyaltyOptions> options, TimeProvider clock)
{
    private readonly TimeZoneInfo _zone = TimeZoneInfo.FindSystemTimeZoneById(options.Value.TimeZone);
    private readonly int _expiryYears = options.Value.ExpiryYearsAfterEarning;

    public DateOnly Today() => DateOnly.FromDateTime(TimeZoneInfo.ConvertTime(clock.GetUtcNow(), _zone).DateTime);

    /// <summary>
    /// Points earned at <paramref name="earnedUtc"/> expire at the end of the calendar year after the year they
    /// were earned: earned on 2026-05-01 (local) they last until 2027-12-31 23:59:59 local, i.e. they expire at
    /// 2028-01-01 00:00 local.
    /// </summary>
    public DateTime ExpiresAt(DateTime earnedUtc)
    {
        var local = TimeZoneInfo.ConvertTimeFromUtc(earnedUtc, _zone);
        var end = new DateTime(local.Year + _expiryYears + 1, 1, 1, 0, 0, 0, DateTimeKind.Unspecified);
        return TimeZoneInfo.ConvertTimeToUtc(end, _zone);
    }
}
