using Crm.Campaigns;
using Crm.Campaigns.Analytics;
using Crm.Campaigns.Models;
using Crm.Campaigns.Reports;

namespace Crm.UnitTests.Campaigns;

/// <summary>RFM at every boundary of the seed's tables, deciles, quadrants, ladder and churn with hand-computed numbers.</summary>
public class AnalyticsRulesTests
{
    private static readonly TimeZoneInfo Shanghai = TimeZoneInfo.FindSystemTimeZoneById("Asia/Shanghai");

    private static CampaignsOptions Defaults()
    {
        var o = new CampaignsOptions();
        o.ApplyDefaults();
        return o;
    }

    private static readonly Engine Engine = new(Defaults(), Shanghai);
    // As of 15 June 2026, 12:00 in Shanghai (04:00 UTC).
    private static readonly DateTime AsOfLocal = new(2026, 6, 15, 12, 0, 0);
    private static readonly DateTime AsOf = Engine.ToUtc(AsOfLocal);

    [Theory]
    [InlineData(0, 0, 5)]        // today
    [InlineData(1, 0, 5)]        // exactly one calendar month: the band "up to 1 month" ends there
    [InlineData(1, 1, 4)]        // one month and a minute
    [InlineData(3, 0, 4)]
    [InlineData(3, 1, 3)]
    [InlineData(6, 0, 3)]
    [InlineData(6, 1, 2)]
    [InlineData(12, 0, 2)]       // exactly twelve months is still "6-12"
    [InlineData(12, 1, 1)]       // over twelve months
    public void Recency_scores_at_the_month_boundaries(int monthsAgo, int minutesEarlier, int expected)
    {
        var rfm = new RfmTable(Defaults());
        var last = AsOfLocal.AddMonths(-monthsAgo).AddMinutes(-minutesEarlier);
        Assert.Equal(expected, rfm.Recency(last, AsOfLocal));
    }

    [Theory]
    [InlineData(0, 1)] [InlineData(1, 1)] [InlineData(2, 2)] [InlineData(5, 2)] [InlineData(6, 3)] [InlineData(10, 3)]
    [InlineData(11, 4)] [InlineData(23, 4)] [InlineData(24, 5)] [InlineData(100, 5)]
    public void Frequency_scores_at_the_order_count_boundaries(int orders, int expected) =>
        Assert.Equal(expected, new RfmTable(Defaults()).Frequency(orders));

    [Theory]
    [InlineData("0.01", 1)] [InlineData("500.00", 1)] [InlineData("500.01", 2)] [InlineData("1000.00", 2)] [InlineData("1000.01", 3)]
    [InlineData("3000.00", 3)] [InlineData("3000.01", 4)] [InlineData("5000.00", 4)] [InlineData("5000.01", 5)]
    public void Monetary_scores_at_the_average_spend_boundaries(string average, int expected) =>
        Assert.Equal(expected, new RfmTable(Defaults()).Monetary(decimal.Parse(average, System.Globalization.CultureInfo.InvariantCulture)));

    private static CustomerFacts Buyer(int id, int orders, decimal spend, DateTime lastLocal, int windowOrders = -1, decimal windowSpend = -1,
        decimal currentSpend = -1, DateTime? firstLocal = null, string? tier = null) =>
        new(new Guid(id, 0, 0, new byte[8]), orders, spend, Engine.ToUtc(firstLocal ?? lastLocal), Engine.ToUtc(lastLocal), orders == 0 ? 0 : spend / orders,
            orders, currentSpend < 0 ? spend : currentSpend, windowOrders < 0 ? orders : windowOrders, windowSpend < 0 ? spend : windowSpend, tier);

    [Fact]
    public void A_hand_built_set_scores_as_computed_by_hand()
    {
        CustomerFacts[] set =
        [
            // 24 orders averaging 5,000.01, last exactly a month ago: 5-5-5, champions.
            Buyer(1, 24, 120_000.24m, AsOfLocal.AddMonths(-1), firstLocal: AsOfLocal.AddMonths(-20)),
            // 23 orders averaging exactly 5,000, last 3 months + 1 minute ago: 3-4-4, loyal.
            Buyer(2, 23, 115_000m, AsOfLocal.AddMonths(-3).AddMinutes(-1), firstLocal: AsOfLocal.AddMonths(-20)),
            // 2 orders averaging 500.01, last exactly 12 months ago: 2-2-2, hibernating.
            Buyer(3, 2, 1_000.02m, AsOfLocal.AddMonths(-12), firstLocal: AsOfLocal.AddMonths(-13)),
            // 1 order of exactly 500 yesterday: 5-1-1, new.
            Buyer(4, 1, 500m, AsOfLocal.AddDays(-1)),
            // Orders only before the 24-month window: frequency 0 → 1, monetary of nothing → 1, recency 1.
            Buyer(5, 3, 9_000m, AsOfLocal.AddMonths(-25), windowOrders: 0, windowSpend: 0, currentSpend: 0, firstLocal: AsOfLocal.AddMonths(-30)),
            // 11 orders averaging 3,000.01 in the window (2 more, older, outside it), last 6 months ago: 3-4-4.
            Buyer(6, 13, 40_000.11m, AsOfLocal.AddMonths(-6), windowOrders: 11, windowSpend: 33_000.11m, firstLocal: AsOfLocal.AddMonths(-30)),
        ];
        var scores = Engine.Score(set, AsOf, null, 365).ToDictionary(s => s.Facts.CustomerId.ToString()[..8]);
        Assert.Equal(("555", "champions"), (scores["00000001"].Cell, scores["00000001"].Group));
        Assert.Equal(("344", "loyal"), (scores["00000002"].Cell, scores["00000002"].Group));
        Assert.Equal(("222", "hibernating"), (scores["00000003"].Cell, scores["00000003"].Group));
        Assert.Equal(("511", "new"), (scores["00000004"].Cell, scores["00000004"].Group));
        Assert.Equal(("111", "hibernating"), (scores["00000005"].Cell, scores["00000005"].Group));
        Assert.Equal(("344", "loyal"), (scores["00000006"].Cell, scores["00000006"].Group));
    }

    [Fact]
    public void Decile_shares_sum_to_100_and_the_top_tenth_of_100_to_2000_holds_18_57_percent()
    {
        // Twenty customers spending 100, 200, ..., 2,000: the top tenth is the two largest, 3,900 of 21,000.
        var spends = Enumerable.Range(1, 20).Select(i => i * 100m).ToList();
        var deciles = Engine.Deciles(spends);
        Assert.Equal(10, deciles.Count);
        Assert.All(deciles, d => Assert.Equal(2, d.Count));
        var total = deciles.Sum(d => d.Revenue);
        Assert.Equal(21_000m, total);
        Assert.Equal(3_900m, deciles[0].Revenue);
        Assert.Equal(18.5714, (double)(deciles[0].Revenue / total * 100), 4);
        Assert.Equal(300m, deciles[9].Revenue);
        Assert.Equal(100m, deciles.Sum(d => d.Revenue / total * 100));
        // Customers without spend are in no tenth; 25 customers split 3,2,3,2,... (index × 10 / n).
        Assert.Equal([3, 2, 3, 2, 3, 2, 3, 2, 3, 2], Engine.Deciles(Enumerable.Range(1, 25).Select(i => (decimal)i).Append(0m).ToList()).Select(d => d.Count));
    }

    [Fact]
    public void Quadrants_split_at_the_medians()
    {
        Assert.Equal(QuadrantKind.Vip, Engine.Quadrant(true, true));
        Assert.Equal(QuadrantKind.Growable, Engine.Quadrant(false, true));
        Assert.Equal(QuadrantKind.Maintain, Engine.Quadrant(true, false));
        Assert.Equal(QuadrantKind.Abandon, Engine.Quadrant(false, false));

        // Four repeat buyers: current spend above/below the median (1,500) × future value above/below its median.
        var models = new FittedModels(new BgNbd(0.5, 30, 0.8, 2.5), 0, 4, new GammaGamma(6, 4, 500), 0, 4, AsOf, AsOf);
        CustomerFacts[] set =
        [
            // frequent and recent, big spender → VIP
            Buyer(1, 10, 5_000m, AsOfLocal.AddDays(-3), firstLocal: AsOfLocal.AddDays(-200)),
            // frequent and recent, small spender → growable (high future, low current)
            Buyer(2, 10, 1_000m, AsOfLocal.AddDays(-3), firstLocal: AsOfLocal.AddDays(-200), currentSpend: 1_000m),
            // big spend long ago, silent since → maintain
            Buyer(3, 2, 4_000m, AsOfLocal.AddDays(-300), firstLocal: AsOfLocal.AddDays(-330), currentSpend: 2_000m),
            // little, long ago → abandon
            Buyer(4, 2, 200m, AsOfLocal.AddDays(-300), firstLocal: AsOfLocal.AddDays(-330), currentSpend: 100m),
        ];
        var scores = Engine.Score(set, AsOf, models, 365).Select(s => s.Quadrant).ToList();
        Assert.Equal([QuadrantKind.Vip, QuadrantKind.Growable, QuadrantKind.Maintain, QuadrantKind.Abandon], scores);
    }

    [Fact]
    public void Clv_is_expected_purchases_times_expected_value_and_discounting_lowers_it()
    {
        var model = new BgNbd(0.243, 4.414 * 7, 0.793, 2.426);
        var h = new PurchaseHistory(2, 30.43 * 7, 38.86 * 7, 100);
        var undiscounted = Engine.Clv(model, h, 100m, 273, 0);
        Assert.Equal(decimal.Round((decimal)model.ConditionalExpectedPurchases(273, 2, 30.43 * 7, 38.86 * 7) * 100m, 2), undiscounted);
        Assert.InRange(undiscounted, 122.5m, 122.7m); // the paper's 1.226 purchases over 39 weeks × 100
        Assert.True(Engine.Clv(model, h, 100m, 273, 0.10) < undiscounted);
    }

    [Theory]
    [InlineData(0, 0, null, "prospect")]
    [InlineData(1, 0, null, "customer")]
    [InlineData(2, 30, null, "client")]
    [InlineData(5, 200, null, "supporter")]
    [InlineData(10, 400, "S2", "supporter")] // tier too low for advocate
    [InlineData(10, 400, "S3", "advocate")]
    [InlineData(20, 800, "S4", "partner")]
    [InlineData(20, 700, "S6", "advocate")]  // tenure too short for partner
    public void Ladder_stage_follows_orders_tenure_and_tier(int orders, int tenureDays, string? tier, string expected)
    {
        var c = new CustomerFacts(Guid.NewGuid(), orders, orders * 100m, orders == 0 ? null : AsOf.AddDays(-tenureDays), orders == 0 ? null : AsOf,
            100m, orders, orders * 100m, orders, orders * 100m, tier);
        Assert.Equal(expected, Engine.Ladder(c, AsOf));
    }

    [Fact]
    public void Churn_without_the_model_compares_days_since_the_last_order_with_the_usual_interval()
    {
        // Repeat buyers with mean intervals 20, 30 and 40 days: the usual interval of one-order customers is 30 days;
        // high risk beyond 3 × 30 = 90 days, medium beyond 1.5 × 30 = 45.
        CustomerFacts[] set =
        [
            Buyer(1, 2, 200m, AsOfLocal.AddDays(-1), firstLocal: AsOfLocal.AddDays(-21)),
            Buyer(2, 2, 200m, AsOfLocal.AddDays(-1), firstLocal: AsOfLocal.AddDays(-31)),
            Buyer(3, 3, 300m, AsOfLocal.AddDays(-1), firstLocal: AsOfLocal.AddDays(-81)),
            Buyer(4, 1, 100m, AsOfLocal.AddDays(-91)),
            Buyer(5, 1, 100m, AsOfLocal.AddDays(-46)),
            Buyer(6, 1, 100m, AsOfLocal.AddDays(-45)),
        ];
        var churn = Engine.Score(set, AsOf, null, 365).Skip(3).Select(s => (s.Churn, s.ChurnBasis)).ToList();
        Assert.Equal([(ChurnLevel.High, "interval"), (ChurnLevel.Medium, "interval"), (ChurnLevel.Low, "interval")], churn);
    }

    [Fact]
    public void Churn_with_the_model_follows_P_active()
    {
        var models = new FittedModels(new BgNbd(0.243, 4.414 * 7, 0.793, 2.426), 0, 2, new GammaGamma(6.25, 3.74, 15.44), 0, 2, AsOf, AsOf);
        CustomerFacts[] set =
        [
            Buyer(1, 3, 300m, AsOfLocal.AddDays(-2), firstLocal: AsOfLocal.AddDays(-270)),   // recent: P(active) ≈ 0.8 → low
            Buyer(2, 3, 300m, AsOfLocal.AddDays(-235), firstLocal: AsOfLocal.AddDays(-270)), // long silent → high
        ];
        var scores = Engine.Score(set, AsOf, models, 365);
        Assert.Equal((ChurnLevel.Low, "model"), (scores[0].Churn, scores[0].ChurnBasis));
        Assert.Equal((ChurnLevel.High, "model"), (scores[1].Churn, scores[1].ChurnBasis));
        Assert.True(scores[0].PActive > 0.6 && scores[1].PActive < 0.3, $"{scores[0].PActive} {scores[1].PActive}");
    }

    [Theory]
    [InlineData(2025, 12, 29, "2026-W01")] // Monday of ISO week 1 of 2026 lies in 2025
    [InlineData(2027, 1, 1, "2026-W53")]   // 1 January 2027 (a Friday) belongs to 2026's week 53
    [InlineData(2026, 12, 28, "2026-W53")]
    [InlineData(2027, 1, 4, "2027-W01")]
    public void Iso_week_labels_use_the_iso_year(int year, int month, int day, string expected) =>
        Assert.Equal(expected, SalesReports.Label(PeriodUnit.IsoWeek, new DateTime(year, month, day)));

    [Fact]
    public void Period_labels()
    {
        var d = new DateTime(2026, 11, 1);
        Assert.Equal(("2026", "2026-Q4", "2026-11"), (SalesReports.Label(PeriodUnit.Year, d), SalesReports.Label(PeriodUnit.Quarter, d), SalesReports.Label(PeriodUnit.Month, d)));
    }
}
