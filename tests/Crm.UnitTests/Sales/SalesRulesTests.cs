using Crm.Sales;
using Crm.Sales.Activities;
using Crm.Sales.Opportunities;
using Crm.Sales.Reports;
using Crm.ServiceDefaults.Errors;

namespace Crm.UnitTests.Sales;

public class SalesRulesTests
{
    private static readonly Pipeline Default = new(SalesOptions.DefaultStages);

    [Fact]
    public void Default_pipeline_has_the_six_stages_with_their_probabilities()
    {
        Assert.Equal([("qualification", 10), ("needs_analysis", 20), ("design_proposal", 50), ("negotiation", 75), ("won", 100), ("lost", 0)],
            Default.Stages.Select(s => (s.Code, s.Probability)));
        Assert.Equal("qualification", Default.First.Code);
    }

    [Fact]
    public void Weighted_pipeline_of_100000_50000_20000_at_50_75_10_is_89500_per_month_quarter_owner_and_total()
    {
        var july = new DateTime(2027, 7, 1);
        var weighted = new[] { (100_000m, 50), (50_000m, 75), (20_000m, 10) }.Select(x => Pipeline.Weighted(x.Item1, x.Item2)).ToList();
        Assert.Equal([50_000m, 37_500m, 2_000m], weighted);
        var result = SalesReports.Forecast([
            new ForecastCell("rep-a", july, 2, 150_000m, 87_500m),
            new ForecastCell("rep-b", july, 1, 20_000m, 2_000m),
            new ForecastCell("rep-b", new DateTime(2027, 10, 1), 1, 10_000m, 7_500m),
        ]);
        Assert.Equal(97_000m, result.TotalWeighted);
        Assert.Equal([("2027-07", "", 89_500m), ("2027-07", "rep-a", 87_500m), ("2027-07", "rep-b", 2_000m), ("2027-10", "", 7_500m), ("2027-10", "rep-b", 7_500m)],
            result.Months.Select(b => (b.Period, b.OwnerId, b.Weighted)));
        Assert.Equal([("2027-Q3", "", 89_500m), ("2027-Q3", "rep-a", 87_500m), ("2027-Q3", "rep-b", 2_000m), ("2027-Q4", "", 7_500m), ("2027-Q4", "rep-b", 7_500m)],
            result.Quarters.Select(b => (b.Period, b.OwnerId, b.Weighted)));
        Assert.Equal([("", 97_000m, 4), ("rep-a", 87_500m, 2), ("rep-b", 9_500m, 2)], result.Owners.Select(b => (b.OwnerId, b.Weighted, b.Opportunities)));
    }

    [Fact]
    public void Weighted_amounts_round_to_the_fen()
    {
        Assert.Equal(3.33m, Pipeline.Weighted(33.33m, 10));
        Assert.Equal(0.01m, Pipeline.Weighted(0.05m, 10)); // 0.005 rounds away from zero
    }

    [Fact]
    public void A_closed_opportunity_moves_only_by_reopening_and_a_receipt_needs_a_won_deal_and_room()
    {
        var id = Guid.NewGuid();
        var lost = Default.Get("lost");
        var won = Default.Get("won");
        var negotiation = Default.Get("negotiation");
        var e = Assert.Throws<PreconditionFailedException>(() => StageRules.CheckMove(id, lost, won));
        Assert.Equal("OPPORTUNITY_CLOSED", e.Type);
        Assert.Equal("SAME_STAGE", Assert.Throws<PreconditionFailedException>(() => StageRules.CheckMove(id, negotiation, negotiation)).Type);
        StageRules.CheckMove(id, negotiation, Default.Get("qualification")); // backwards among open stages is allowed
        StageRules.CheckReopen(id, lost, negotiation, paid: 0);
        Assert.Equal("OPPORTUNITY_OPEN", Assert.Throws<PreconditionFailedException>(() => StageRules.CheckReopen(id, negotiation, negotiation, 0)).Type);
        Assert.Equal("OPPORTUNITY_PAID", Assert.Throws<PreconditionFailedException>(() => StageRules.CheckReopen(id, won, negotiation, 10m)).Type);

        StageRules.CheckReceipt(id, won, 30_000m, 10_000m, 20_000m);
        Assert.Equal("OVERPAYMENT", Assert.Throws<PreconditionFailedException>(() => StageRules.CheckReceipt(id, won, 30_000m, 10_000m, 20_000.01m)).Type);
        Assert.Equal("OPPORTUNITY_NOT_WON", Assert.Throws<PreconditionFailedException>(() => StageRules.CheckReceipt(id, negotiation, 30_000m, 0, 1m)).Type);
    }

    [Fact]
    public void Unknown_stage_is_a_field_violation_naming_the_configured_stages()
    {
        var v = new Validator();
        Assert.Null(StageRules.Parse(Default, "closing", "stage", v));
        var ex = Assert.Throws<ValidationException>(v.ThrowIfInvalid);
        Assert.Equal("stage", Assert.Single(ex.Violations).Field);
        Assert.Contains("design_proposal", ex.Violations[0].Description);
        Assert.Equal("won", StageRules.Parse(Default, " WON ", "stage", new Validator())!.Code);
    }

    [Fact]
    public void A_pipeline_without_won_or_lost_or_with_a_stage_twice_is_refused_at_start()
    {
        Assert.Throws<InvalidOperationException>(() => new Pipeline([new StageOptions { Code = "open", Probability = 10 }, new StageOptions { Code = "won", Probability = 100 }]));
        Assert.Throws<InvalidOperationException>(() => new Pipeline([.. SalesOptions.DefaultStages, new StageOptions { Code = "won", Probability = 90 }]));
        Assert.Throws<InvalidOperationException>(() => new Pipeline([new StageOptions { Code = "x", Probability = 120 }, .. SalesOptions.DefaultStages]));
    }

    [Fact]
    public void Search_key_keeps_substrings_aligned_to_characters()
    {
        Assert.Equal("g94bbg6212", SearchKey.Encode("钻戒"));
        Assert.Equal("g0070g0074", SearchKey.Encode("PT"));
        var text = SearchKey.Encode("客户想定制一枚铂金钻戒");
        Assert.Contains(SearchKey.Encode("钻戒"), text);
        Assert.DoesNotContain(SearchKey.Encode("戒钻"), text);
        // A query can only match at a character boundary: 'g' never occurs inside the hex digits.
        Assert.All(Enumerable.Range(0, text.Length).Where(i => text[i] == 'g'), i => Assert.Equal(0, i % 5));
    }

    [Fact]
    public void Rates_are_percentages_with_two_decimals()
    {
        Assert.Equal("50.00", Rules.Percent(1, 2));
        Assert.Equal("33.33", Rules.Percent(1, 3));
        Assert.Equal("0.00", Rules.Percent(0, 0));
    }
}
