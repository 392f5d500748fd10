using Crm.Campaigns.Marketing;
using Crm.Campaigns.V1;
using Crm.Common.V1;
using Crm.IntegrationTests.Support;
using Crm.Loyalty.V1;
using Crm.ServiceDefaults.Security;
using Google.Protobuf.WellKnownTypes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Crm.IntegrationTests.Campaigns;

/// <summary>
/// A known fixture — four treated, one control, one without consent, one already at the weekly cap — simulated before the
/// run and reported after it, against figures worked out by hand. Orders arrive the production way (the customer
/// service's RecordOrder → OrderPaid → the read model), the coupon used at the till through loyalty (CouponUsed).
/// </summary>
[Collection(SuiteCollection.Name)]
public class CampaignRoiTests(SuiteFixture suite)
{
    private readonly GivingSteps _steps = new(suite);
    private readonly CampaignService.CampaignServiceClient _campaigns = new(suite.Campaigns.ChannelFor(Roles.Marketing));

    [Fact]
    public async Task Simulation_and_the_report_of_a_known_fixture_match_a_hand_computation()
    {
        Assert.Equal(0.05m, suite.Campaigns.Services.GetRequiredService<IOptions<MarketingOptions>>().Value.UnitCost.Sms);
        var tag = GivingSteps.NewTag();
        var capTag = GivingSteps.NewTag();
        var reward = await _steps.CouponRewardAsync(faceValue: 50m, stock: -1);
        var campaign = await _steps.RunningAsync(new CreateCampaignRequest
        {
            Name = "pre-sale " + tag, Kind = CampaignKind.PreSale, SegmentId = (await _steps.TagSegmentAsync(tag)).SegmentId,
            Channel = CampaignChannel.Sms, Template = "{name}：预售礼券 {coupon}", RewardId = reward, ControlSharePercent = 20,
            Schedule = new CampaignSchedule { Kind = ScheduleKind.Once, StartAt = Timestamp.FromDateTime(DateTime.UtcNow) },
        });
        var campaignId = Guid.Parse(campaign.CampaignId);
        bool HeldOut(string id) => ControlGroup.IsHeldOut(campaignId, Guid.Parse(id), 20);

        // Pick the fixture by the campaign's stable hash: customers are made in a pool and the picks get the campaign's tag.
        var pool = GivingSteps.NewTag();
        var treated = new List<string>();
        string? control = null;
        while (treated.Count < 5 || control is null)
        {
            var id = await _steps.NewCustomerAsync(pool, consent: true);
            if (!HeldOut(id)) { if (treated.Count < 5) treated.Add(id); }
            else control ??= id;
        }
        var capped = treated[4];
        treated.RemoveAt(4);
        var noConsent = await _steps.NewCustomerAsync(pool, consent: false); // never held out: the control group is drawn from those with consent
        foreach (var id in treated.Append(control).Append(noConsent)) await _steps.SetTagsAsync(id, tag);
        await _steps.SetTagsAsync(capped, tag, capTag);
        var fixture = treated.Append(control).Append(noConsent).Append(capped).ToArray();
        await _steps.WaitForAsync<bool>("SELECT count(*) = 7 FROM customers WHERE customer_id = ANY(@ids) AND @tag = ANY(tags)",
            new { ids = fixture.Select(Guid.Parse).ToArray(), tag }, ok => ok, "the fixture's tags in the read model");
        await _steps.WaitForAccountsAsync(fixture);

        // The capped customer has had two messages this week already (the cap is 2).
        var warmUp = await _steps.RunningAsync(new CreateCampaignRequest
        {
            Name = "warm-up " + capTag, Kind = CampaignKind.NewProduct, SegmentId = (await _steps.TagSegmentAsync(capTag)).SegmentId,
            Channel = CampaignChannel.Email, Template = "{name}，新品上市",
            Schedule = new CampaignSchedule { Kind = ScheduleKind.Once, StartAt = Timestamp.FromDateTime(DateTime.UtcNow) },
        });
        foreach (var occurrence in new[] { "w1", "w2" })
            Assert.Equal(1, (await _campaigns.RunCampaignAsync(new RunCampaignRequest { CampaignId = warmUp.CampaignId, Occurrence = occurrence })).Sent);

        // Simulation: 7 members, 1 without consent, 1 held out, 1 capped → 4 messages.
        // Cost: 4 × 0.05 (SMS) = 0.20 for messages + 4 × 50.00 coupons = 200.00 → 200.20. Coupons carry no points.
        var simulated = await _campaigns.SimulateCampaignAsync(new SimulateCampaignRequest { CampaignId = campaign.CampaignId });
        Assert.Equal((7L, 1L, 1L, 1L, 4L, "0.20", "200.00", "200.20", 0L),
            (simulated.Audience, simulated.Control, simulated.NoConsent, simulated.Capped, simulated.Messages, simulated.MessageCost.Amount,
             simulated.RewardCost.Amount, simulated.ExpectedCost.Amount, simulated.ExpectedPoints));

        // An order before the send never counts for the campaign.
        await _steps.PayAsync(treated[2], 80m, DateTime.UtcNow.AddHours(-1));
        var run = await _campaigns.RunCampaignAsync(new RunCampaignRequest { CampaignId = campaign.CampaignId });
        Assert.Equal((4, 1, 1, 1, 0), (run.Sent, run.Control, run.NoConsent, run.Capped, run.Deferred));

        // After the send: treated[0] pays 200.00; treated[1] pays 100.00 using the campaign's 50.00 coupon; the control
        // customer pays 40.00; treated[2] (only the order before) and treated[3] buy nothing.
        await _steps.PayAsync(treated[0], 200m);
        var order = await _steps.PayAsync(treated[1], 100m);
        var code = await _steps.WaitForAsync<string>("SELECT code FROM campaign_coupons WHERE campaign_id = @campaignId AND customer_id = @customer",
            new { campaignId, customer = Guid.Parse(treated[1]) }, c => c.Length > 0, "treated[1]'s coupon");
        await new LoyaltyService.LoyaltyServiceClient(suite.Loyalty.ChannelFor(Roles.Store)).UseCouponAsync(new UseCouponRequest
            { Code = code, OrderAmount = Money.FromDecimal(150m), OrderRef = order, CustomerId = treated[1] });
        await _steps.PayAsync(control, 40m);
        await _steps.WaitForAsync<bool>("SELECT count(*) = 4 FROM orders WHERE customer_id = ANY(@ids) AND paid_at IS NOT NULL",
            new { ids = fixture.Select(Guid.Parse).ToArray() }, ok => ok, "the four orders in the read model");
        await _steps.WaitForAsync<bool>("SELECT EXISTS (SELECT 1 FROM coupon_uses WHERE code = @code)", new { code }, ok => ok, "CouponUsed");

        // By hand, window 14 days from each one's delivery:
        //   treated: 4 customers, 2 converted → 0.5000; revenue 200.00 + 100.00 = 300.00 → 75.00 per customer
        //   control: 1 customer, 1 converted → 1.0000; revenue 40.00 → 40.00 per customer
        //   uplift: conversion 0.5 − 1 = −0.5000; revenue per customer 75.00 − 40.00 = 35.00; incremental 35.00 × 4 = 140.00
        //   cost: 4 messages × 0.05 = 0.20 + one coupon used 50.00 = 50.20
        //   ROI: (140.00 − 50.20) / 50.20 = 89.80 / 50.20 = 1.78884… → 1.7888
        var report = await _campaigns.GetCampaignReportAsync(new GetCampaignReportRequest { CampaignId = campaign.CampaignId });
        Assert.Equal((14, 4L, 2L, "0.5000", "300.00", "75.00"),
            (report.AttributionWindowDays, report.Treated.Customers, report.Treated.Converted, report.Treated.ConversionRate,
             report.Treated.Revenue.Amount, report.Treated.RevenuePerCustomer.Amount));
        Assert.Equal((1L, 1L, "1.0000", "40.00", "40.00"),
            (report.Control.Customers, report.Control.Converted, report.Control.ConversionRate, report.Control.Revenue.Amount,
             report.Control.RevenuePerCustomer.Amount));
        Assert.Equal(("-0.5000", "35.00", "140.00"), (report.ConversionUplift, report.RevenuePerCustomerUplift.Amount, report.IncrementalRevenue.Amount));
        Assert.Equal((4L, "0.20", 1L, "50.00", "50.20", "1.7888"),
            (report.Messages, report.MessageCost.Amount, report.CouponsUsed, report.RewardCost.Amount, report.Cost.Amount, report.Roi));
    }
}
