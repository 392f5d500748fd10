using System.Globalization;
using Crm.Campaigns.Segments;
using Crm.Loyalty.V1;
using Microsoft.Extensions.Options;

namespace Crm.Campaigns.Marketing;

/// <summary>
/// Points-expiring reminders: once per brand-time day, each running POINTS_EXPIRING campaign (ON_EVENT) asks the loyalty
/// service which members have points expiring within <see cref="SchedulerOptions.PointsExpiringWithinDays"/> days
/// (ListExpiringPoints, paged, with a deadline) and reminds those in its segment. Loyalty owns the point lots and their
/// expiry dates; the read model only has balances, so asking is the honest source, and one paged call a day is cheap. The
/// occurrence is the batch's expiry instant in brand time ("expiring:2028-01-01T00:00"): a member is reminded once per
/// batch however many days it stays in the window. A call that fails gives the day's run back (logged): the next tick asks again.
/// </summary>
public sealed class PointsExpiringTrigger(LoyaltyService.LoyaltyServiceClient loyalty, CampaignDispatcher dispatcher, SegmentAudience audience,
    IOptions<MarketingOptions> options, IOptions<CampaignsOptions> campaignsOptions)
{
    private readonly TimeZoneInfo _zone = TimeZoneInfo.FindSystemTimeZoneById(campaignsOptions.Value.TimeZone);

    /// <returns>Messages sent.</returns>
    public async Task<int> RunAsync(CampaignRow campaign, Guid segmentId, CancellationToken ct)
    {
        var sent = 0;
        var request = new ListExpiringPointsRequest { WithinDays = options.Value.Scheduler.PointsExpiringWithinDays, PageSize = 200 };
        do
        {
            var page = await loyalty.ListExpiringPointsAsync(request, deadline: DateTime.UtcNow.Add(options.Value.CustomerCallTimeout), // a gRPC deadline is wall-clock time, not the business clock
                cancellationToken: ct);
            foreach (var account in page.Accounts)
            {
                if (!Guid.TryParse(account.CustomerId, out var customerId) || !await audience.ContainsAsync(segmentId, customerId, ct)) continue;
                var expires = TimeZoneInfo.ConvertTimeFromUtc(account.ExpiresAt.ToDateTime(), _zone);
                var occurrence = "expiring:" + expires.ToString("yyyy-MM-dd'T'HH:mm", CultureInfo.InvariantCulture);
                if (await dispatcher.SendAsync(campaign, customerId, occurrence, null, ct) == SendOutcome.Sent) sent++;
            }
            request.PageToken = page.NextPageToken;
        } while (request.PageToken != "");
        return sent;
    }
}
