using System.Globalization;
using Crm.Campaigns.V1;
using Crm.ServiceDefaults.Data;
using Dapper;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Crm.Campaigns.Marketing;

/// <summary>
/// Runs running campaigns when they are due, every <see cref="SchedulerOptions.TickInterval"/> on the service's clock:
/// a one-off at or after its start_at (occurrence "once"); a recurring one at the latest due time of its cron in the brand's
/// time zone (occurrence "2026-11-27T09:00") — after an outage only that latest one runs, not each missed time; a birthday
/// campaign (kind BIRTHDAY, schedule ON_EVENT) each local day to the segment's members born that day (occurrence
/// "birthday:2026", so once a year), catching up a few missed days; a points-expiring campaign (ON_EVENT) once a day. Each occurrence is claimed in campaign_runs first, so two
/// instances never both run it (and the delivery log's key keeps a takeover from sending twice). Then the win-back trigger.
/// </summary>
public sealed class CampaignScheduler(NpgsqlDataSource db, CampaignRuns runs, CampaignRunner runner, CampaignDispatcher dispatcher,
    BirthdayAudience birthdays, WinBackTrigger winBack, PointsExpiringTrigger expiring, IOptions<MarketingOptions> options, IOptions<CampaignsOptions> campaignsOptions,
    TimeProvider clock, ILogger<CampaignScheduler> logger) : BackgroundService
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly TimeZoneInfo _zone = TimeZoneInfo.FindSystemTimeZoneById(campaignsOptions.Value.TimeZone);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var o = options.Value.Scheduler;
        if (!o.Enabled) return;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await TickAsync(stoppingToken);
                await Task.Delay(o.TickInterval, clock, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { return; }
            catch (Exception e)
            {
                logger.LogError(e, "A campaign scheduler tick failed; the next tick tries again");
                await Task.Delay(o.TickInterval, clock, stoppingToken);
            }
        }
    }

    /// <summary>Runs whatever is due now; when it returns, every occurrence due by now has run (here or in another instance).</summary>
    public async Task TickAsync(CancellationToken ct)
    {
        await _gate.WaitAsync(ct);
        try
        {
            var now = clock.UtcNowForDb();
            await using (var connection = await db.OpenConnectionAsync(ct))
                foreach (var campaign in await connection.QueryAsync<CampaignRow>(new CommandDefinition("""
                    SELECT * FROM campaigns WHERE state = 'running' AND (schedule_kind IN (@once, @recurring) OR (schedule_kind = @onEvent AND kind IN (@birthday, @expiring)))
                    """, new
                    {
                        once = (short)ScheduleKind.Once, recurring = (short)ScheduleKind.Recurring, onEvent = (short)ScheduleKind.OnEvent,
                        birthday = (short)CampaignKind.Birthday, expiring = (short)CampaignKind.PointsExpiring,
                    }, cancellationToken: ct)))
                {
                    try { await RunDueAsync(campaign, now, ct); }
                    catch (Exception e) when (!ct.IsCancellationRequested)
                    {
                        logger.LogError(e, "Campaign {Campaign}: its due run failed; the next tick tries again", campaign.CampaignId);
                    }
                }
            await winBack.RunAsync(ct);
        }
        finally { _gate.Release(); }
    }

    private async Task RunDueAsync(CampaignRow campaign, DateTime now, CancellationToken ct)
    {
        if (campaign.SegmentId is not { } segmentId) return;
        switch ((ScheduleKind)campaign.ScheduleKind)
        {
            case ScheduleKind.Once when campaign.StartAt is { } startAt && startAt <= now:
                await RunOccurrenceAsync(campaign, segmentId, "once", startAt, now, ct);
                break;
            case ScheduleKind.Recurring when Due(campaign, now) is { } due:
                await RunOccurrenceAsync(campaign, segmentId, due.ToString("yyyy-MM-dd'T'HH:mm", CultureInfo.InvariantCulture), ToUtc(due), now, ct);
                break;
            case ScheduleKind.OnEvent when campaign.Kind == (short)CampaignKind.Birthday:
                await RunBirthdaysAsync(campaign, segmentId, now, ct);
                break;
            case ScheduleKind.OnEvent when campaign.Kind == (short)CampaignKind.PointsExpiring:
                await RunExpiringAsync(campaign, segmentId, now, ct);
                break;
        }
    }

    /// <summary>The latest due local time of the cron at or before now and not before the campaign started running (at most a year back).</summary>
    private DateTime? Due(CampaignRow campaign, DateTime now)
    {
        if (Cron.TryParse(campaign.Cron, out _) is not { } cron) return null; // checked when created
        var local = ToLocal(now);
        var since = campaign.RunningSince is { } r ? ToLocal(r) : local;
        var floor = since > local.AddDays(-366) ? since : local.AddDays(-366);
        return cron.Previous(local, floor);
    }

    private async Task RunOccurrenceAsync(CampaignRow campaign, Guid segmentId, string occurrence, DateTime dueAt, DateTime now, CancellationToken ct)
    {
        if (!await runs.TryClaimAsync(campaign.CampaignId, occurrence, dueAt, now, ct)) return;
        RunCampaignResponse result;
        try { result = await runner.RunAsync(campaign, segmentId, occurrence, ct); }
        catch
        {
            await runs.ReleaseAsync(campaign.CampaignId, occurrence);
            throw;
        }
        await runs.FinishAsync(campaign.CampaignId, occurrence, result.Sent, clock.UtcNowForDb(), ct);
        logger.LogInformation("Campaign {Campaign} ran {Occurrence}: {Sent} sent, {Deferred} deferred, {Capped} capped, {NoConsent} without consent",
            campaign.CampaignId, occurrence, result.Sent, result.Deferred, result.Capped, result.NoConsent);
    }

    /// <summary>Today's birthdays, and those of the days since the last finished day run (up to BirthdayCatchUpDays back).</summary>
    private async Task RunBirthdaysAsync(CampaignRow campaign, Guid segmentId, DateTime now, CancellationToken ct)
    {
        var today = DateOnly.FromDateTime(ToLocal(now));
        var first = today.AddDays(-options.Value.Scheduler.BirthdayCatchUpDays);
        if (await runs.LastFinishedAsync(campaign.CampaignId, "birthday-day:", ct) is { } last && DateOnly.FromDateTime(ToLocal(last)).AddDays(1) > first)
            first = DateOnly.FromDateTime(ToLocal(last)).AddDays(1);
        if (campaign.RunningSince is { } since && DateOnly.FromDateTime(ToLocal(since)) > first) first = DateOnly.FromDateTime(ToLocal(since));
        for (var day = first; day <= today; day = day.AddDays(1))
        {
            var occurrence = $"birthday-day:{day:yyyy-MM-dd}";
            if (!await runs.TryClaimAsync(campaign.CampaignId, occurrence, ToUtc(day.ToDateTime(TimeOnly.MinValue)), now, ct)) continue;
            var sent = 0;
            foreach (var customerId in await birthdays.MembersAsync(segmentId, day, ct))
                if (await dispatcher.SendAsync(campaign, customerId, $"birthday:{day.Year}", null, ct) == SendOutcome.Sent) sent++;
            await runs.FinishAsync(campaign.CampaignId, occurrence, sent, clock.UtcNowForDb(), ct);
        }
    }

    /// <summary>Once per brand-time day: the members whose points expire soon (see <see cref="PointsExpiringTrigger"/>).</summary>
    private async Task RunExpiringAsync(CampaignRow campaign, Guid segmentId, DateTime now, CancellationToken ct)
    {
        var today = DateOnly.FromDateTime(ToLocal(now));
        var occurrence = $"expiring-day:{today:yyyy-MM-dd}";
        if (!await runs.TryClaimAsync(campaign.CampaignId, occurrence, ToUtc(today.ToDateTime(TimeOnly.MinValue)), now, ct)) return;
        int sent;
        try { sent = await expiring.RunAsync(campaign, segmentId, ct); }
        catch
        {
            await runs.ReleaseAsync(campaign.CampaignId, occurrence);
            throw;
        }
        await runs.FinishAsync(campaign.CampaignId, occurrence, sent, clock.UtcNowForDb(), ct);
    }

    private DateTime ToLocal(DateTime utc) => TimeZoneInfo.ConvertTimeFromUtc(DateTime.SpecifyKind(utc, DateTimeKind.Utc), _zone);

    private DateTime ToUtc(DateTime local)
    {
        var unspecified = DateTime.SpecifyKind(local, DateTimeKind.Unspecified);
        while (_zone.IsInvalidTime(unspecified)) unspecified = unspecified.AddHours(1);
        return TimeZoneInfo.ConvertTimeToUtc(unspecified, _zone);
    }
}
