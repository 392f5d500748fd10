using Crm.Campaigns;
using Crm.Campaigns.Segments;
using Crm.Campaigns.V1;
using Crm.ServiceDefaults.Errors;

namespace Crm.UnitTests.Campaigns;

/// <summary>Rule trees: every fault named by its path, values only ever bound as parameters, tier ranges in tier order, limits.</summary>
public class SegmentFilterTests
{
    private static readonly DateTime Now = new(2026, 6, 15, 4, 0, 0, DateTimeKind.Utc);

    private static SegmentVocabulary Vocabulary()
    {
        var o = new CampaignsOptions();
        o.ApplyDefaults();
        return new SegmentVocabulary(o);
    }

    private static SegmentRule Leaf(SegmentField field, SegmentOperator op, params string[] values)
    {
        var rule = new SegmentRule { Field = field, Op = op };
        rule.Values.AddRange(values);
        return rule;
    }

    private static SegmentRule Range(SegmentField field, string min, string max = "") => new() { Field = field, Op = SegmentOperator.Range, Min = min, Max = max };

    private static SegmentRule All(params SegmentRule[] rules) { var r = new SegmentRule(); r.All.AddRange(rules); return r; }
    private static SegmentRule Any(params SegmentRule[] rules) { var r = new SegmentRule(); r.Any.AddRange(rules); return r; }

    private static IReadOnlyList<FieldViolation> Faults(SegmentRule rule)
    {
        var v = new Validator();
        var filter = SegmentFilter.Build(rule, "rules", v, Vocabulary(), Now);
        try { v.ThrowIfInvalid(); }
        catch (ValidationException e)
        {
            Assert.Null(filter);
            return e.Violations;
        }
        Assert.NotNull(filter);
        return [];
    }

    [Fact]
    public void A_bad_leaf_deep_in_the_tree_is_named_by_its_path()
    {
        var rule = Any(
            Leaf(SegmentField.Region, SegmentOperator.In, "上海"),
            Leaf(SegmentField.City, SegmentOperator.In, "深圳"),
            All(new SegmentRule { Op = SegmentOperator.In, Values = { "x" } }, Range(SegmentField.RfmR, "4")));
        var faults = Faults(rule);
        Assert.Equal([("rules.any[2].all[0].field", "must name a field.")], faults.Select(f => (f.Field, f.Description)));
    }

    [Fact]
    public void Wrong_operators_operands_and_values_are_each_reported_where_they_are()
    {
        var rule = All(
            Leaf(SegmentField.Tags, SegmentOperator.Range),                               // tags take HAS_ANY / HAS_ALL
            Range(SegmentField.RfmR, "6"),                                                 // scores are 0-5
            Range(SegmentField.NetSpend, "100.005"),                                       // two decimals
            Leaf(SegmentField.ClvQuadrant, SegmentOperator.In, "vip", "gold"),             // not a quadrant
            Range(SegmentField.Tier, "S9"),                                                // not a tier
            new SegmentRule { Field = SegmentField.LastOrder, Op = SegmentOperator.Before }, // neither at nor days_ago
            new SegmentRule { Field = SegmentField.MarketingConsent, Op = SegmentOperator.IsTrue, Min = "1" }, // unused operand
            new SegmentRule { Not = new SegmentRule(), Field = SegmentField.City });        // two kinds in one node
        var faults = Faults(rule).Select(f => f.Field).ToList();
        Assert.Equal(["rules.all[0].op", "rules.all[1].min", "rules.all[2].min", "rules.all[3].values[1]", "rules.all[4].min",
            "rules.all[5].at", "rules.all[6].min", "rules.all[7]"], faults);
    }

    [Fact]
    public void Values_are_bound_as_parameters_never_written_into_the_sql()
    {
        var hostile = "x'); DROP TABLE customers; --";
        var v = new Validator();
        var filter = SegmentFilter.Build(All(Leaf(SegmentField.City, SegmentOperator.In, hostile), Leaf(SegmentField.Tags, SegmentOperator.HasAll, hostile)),
            "rules", v, Vocabulary(), Now)!;
        Assert.True(v.IsValid);
        Assert.DoesNotContain("DROP", filter.Where);
        Assert.Equal("(coalesce(c.city = ANY(@p0), false) AND coalesce(c.tags @> @p1, false))", filter.Where);
        Assert.Equal([hostile], filter.Parameters.Get<string[]>("p0"));
        Assert.False(filter.NeedsScores);
        Assert.False(filter.NeedsOrders);
    }

    [Fact]
    public void A_tier_range_is_the_tiers_between_its_bounds_in_the_configured_order()
    {
        var v = new Validator();
        var filter = SegmentFilter.Build(All(Range(SegmentField.Tier, "S3"), new SegmentRule { Not = Range(SegmentField.Tier, "S2", "S4") }),
            "rules", v, Vocabulary(), Now)!;
        Assert.Equal(["S3", "S4", "S5", "S6"], filter.Parameters.Get<string[]>("p0"));
        Assert.Equal(["S2", "S3", "S4"], filter.Parameters.Get<string[]>("p1"));
        Assert.Equal("(coalesce(c.tier = ANY(@p0), false) AND NOT (coalesce(c.tier = ANY(@p1), false)))", filter.Where);
    }

    [Fact]
    public void Days_ago_is_taken_from_the_evaluation_time_and_order_and_score_fields_bring_their_joins()
    {
        var v = new Validator();
        var filter = SegmentFilter.Build(All(new SegmentRule { Field = SegmentField.LastOrder, Op = SegmentOperator.Before, DaysAgo = 180 },
            Range(SegmentField.PActive, "0", "0.3")), "rules", v, Vocabulary(), Now)!;
        Assert.Equal(Now.AddDays(-180), filter.Parameters.Get<DateTime>("p0"));
        Assert.Equal(0.3, filter.Parameters.Get<double>("p2"));
        Assert.True(filter.NeedsOrders && filter.NeedsScores);
        Assert.Contains("customers c LEFT JOIN customer_scores s", filter.From);
        Assert.Contains("s.customer_id = c.customer_id LEFT JOIN (SELECT customer_id", filter.From);
    }

    [Fact]
    public void Depth_and_size_are_limited()
    {
        var deep = Leaf(SegmentField.Region, SegmentOperator.In, "上海");
        for (var i = 0; i < SegmentFilter.MaxDepth - 1; i++) deep = new SegmentRule { Not = deep };
        Assert.Empty(Faults(deep)); // six levels: a condition inside five groups
        Assert.Equal(["rules.not.not.not.not.not.not"], Faults(new SegmentRule { Not = deep }).Select(f => f.Field));

        var wide = Any(Enumerable.Range(0, SegmentFilter.MaxRules).Select(_ => Leaf(SegmentField.Region, SegmentOperator.In, "上海")).ToArray());
        Assert.Equal([("rules", "has more than 100 rules.")], Faults(wide).Select(f => (f.Field, f.Description)));
        Assert.Equal([("rules", "is required: a rule tree (all, any, not or a condition).")],
            new Func<IReadOnlyList<FieldViolation>>(() =>
            {
                var v = new Validator();
                SegmentFilter.Build(null, "rules", v, Vocabulary(), Now);
                try { v.ThrowIfInvalid(); return []; } catch (ValidationException e) { return e.Violations; }
            })().Select(f => (f.Field, f.Description)));
    }
}
