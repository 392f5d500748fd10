using System.Globalization;
using Crm.Campaigns.V1;
using Crm.Common.V1;
using Dapper;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Crm.Campaigns.Marketing;

/// <summary>
/// What a campaign returned for what it cost. Treated customers (a message sent) and control customers (held out) are
/// each followed from their first delivery of the campaign for the attribution window; their paid orders in the read
/// model (net of refunds, fully refunded ones not counted) within it are the campaign's. Uplift = treated − control per
/// customer; incremental revenue = revenue uplift per customer × treated customers; cost = messages × the channel's unit
/// cost + face value of the campaign's coupons used; ROI = (incremental revenue − cost) / cost. All in decimal, rounded
/// only on the way out (money to 2 places, rates and ROI to 4). An empty control group counts as no revenue.
/// </summary>
public sealed class Attribution(NpgsqlDataSource db, IOptions<MarketingOptions> options)
{
    private sealed record Group(bool Control, long Customers, long Converted, decimal Revenue);

    public async Task<CampaignReport> ReportAsync(CampaignRow campaign, CancellationToken ct)
    {
        var args = new { campaign.CampaignId, window = campaign.AttributionWindowDays };
        await using var connection = await db.OpenConnectionAsync(ct);
        var groups = (await connection.QueryAsync<Group>(new CommandDefinition("""
            WITH targeted AS (
                SELECT customer_id, status = 'control' AS control, min(at) AS first_at
                FROM campaign_deliveries WHERE campaign_id = @CampaignId AND status IN ('sent', 'control')
                GROUP BY customer_id, status = 'control')
            SELECT t.control, count(*) AS customers, count(*) FILTER (WHERE o.orders > 0) AS converted, coalesce(sum(o.revenue), 0) AS revenue
            FROM targeted t
            CROSS JOIN LATERAL (
                SELECT count(*) AS orders, sum(amount_paid - amount_refunded) AS revenue FROM orders
                WHERE customer_id = t.customer_id AND paid_at >= t.first_at AND paid_at < t.first_at + make_interval(days => @window)
                  AND amount_paid > amount_refunded) o
            GROUP BY t.control
            """, args, cancellationToken: ct))).ToList();
        var messages = await connection.ExecuteScalarAsync<long>(new CommandDefinition(
            "SELECT count(*) FROM campaign_deliveries WHERE campaign_id = @CampaignId AND status = 'sent'", args, cancellationToken: ct));
        var (couponsUsed, rewardCost) = await connection.QuerySingleAsync<(long, decimal)>(new CommandDefinition("""
            SELECT count(*), coalesce(sum(u.face_value), 0) FROM campaign_coupons cc JOIN coupon_uses u ON u.code = cc.code
            WHERE cc.campaign_id = @CampaignId
            """, args, cancellationToken: ct));

        var treated = groups.SingleOrDefault(g => !g.Control) ?? new Group(false, 0, 0, 0);
        var control = groups.SingleOrDefault(g => g.Control) ?? new Group(true, 0, 0, 0);
        var conversionUplift = Rate(treated.Converted, treated.Customers) - Rate(control.Converted, control.Customers);
        var revenueUplift = Rate(treated.Revenue, treated.Customers) - Rate(control.Revenue, control.Customers);
        var incremental = revenueUplift * treated.Customers;
        var messageCost = messages * options.Value.UnitCost.For((CampaignChannel)campaign.Channel);
        var cost = messageCost + rewardCost;
        return new CampaignReport
        {
            CampaignId = campaign.CampaignId.ToString(), AttributionWindowDays = campaign.AttributionWindowDays,
            Treated = ToProto(treated), Control = ToProto(control),
            ConversionUplift = Places4(conversionUplift), RevenuePerCustomerUplift = Money.FromDecimal(revenueUplift),
            IncrementalRevenue = Money.FromDecimal(incremental), Messages = messages, MessageCost = Money.FromDecimal(messageCost),
            CouponsUsed = couponsUsed, RewardCost = Money.FromDecimal(rewardCost), Cost = Money.FromDecimal(cost),
            Roi = cost == 0 ? "" : Places4((incremental - cost) / cost),
        };
    }

    private static decimal Rate(decimal part, long whole) => whole == 0 ? 0 : part / whole;

    private static string Places4(decimal value) =>
        Math.Round(value, 4, MidpointRounding.AwayFromZero).ToString("0.0000", CultureInfo.InvariantCulture);

    private static ReportGroup ToProto(Group g) => new()
    {
        Customers = g.Customers, Converted = g.Converted, ConversionRate = Places4(Rate(g.Converted, g.Customers)),
        Revenue = Money.FromDecimal(g.Revenue), RevenuePerCustomer = Money.FromDecimal(Rate(g.Revenue, g.Customers)),
    };
}
