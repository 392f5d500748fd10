using System.Globalization;
using Microsoft.Extensions.Options;

namespace Crm.Campaigns.Analytics;

/// <summary>Runs the full recompute every day at Campaigns:Recompute:DailyAt in the brand's time zone (when Scheduled).</summary>
public sealed class RecomputeSchedule(ScoreRecompute recompute, IOptions<CampaignsOptions> options, TimeProvider clock, ILogger<RecomputeSchedule> logger)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var o = options.Value;
        if (!o.Recompute.Scheduled) return;
        var zone = TimeZoneInfo.FindSystemTimeZoneById(o.TimeZone);
        var at = TimeOnly.ParseExact(o.Recompute.DailyAt, "HH:mm", CultureInfo.InvariantCulture);
        while (!stoppingToken.IsCancellationRequested)
        {
            var now = clock.GetUtcNow();
            var next = NextRun(now, at, zone);
            try
            {
                await Task.Delay(next - now, clock, stoppingToken);
                await recompute.RunAfterOthersAsync(o.Recompute.RefitModels, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { return; }
            catch (Exception e)
            {
                logger.LogError(e, "The scheduled recompute of the customer scores failed; the previous run stays in use");
            }
        }
    }

    /// <summary>The next instant after <paramref name="now"/> whose brand-time clock reads <paramref name="at"/>.</summary>
    public static DateTimeOffset NextRun(DateTimeOffset now, TimeOnly at, TimeZoneInfo zone)
    {
        var local = TimeZoneInfo.ConvertTime(now, zone);
        var candidate = local.Date + at.ToTimeSpan();
        if (candidate <= local.DateTime) candidate = candidate.AddDays(1);
        // A time skipped by a daylight-saving jump runs an hour later.
        while (zone.IsInvalidTime(candidate)) candidate = candidate.AddHours(1);
        return new DateTimeOffset(candidate, zone.GetUtcOffset(candidate));
    }
}
