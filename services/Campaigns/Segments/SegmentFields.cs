using Crm.Campaigns.V1;
using System.Reflection;
using Google.Protobuf.Reflection;

namespace Crm.Campaigns.Segments;

public enum SegmentTable { Customers, Scores, Orders }

public enum ValueKind { Text, Tier, Integer, Money, Fraction, Time, Tags, Flag }

/// <summary>What a segment field reads (a fixed SQL expression), the operators it takes and the range of its values.</summary>
public sealed record FieldSpec(SegmentTable Table, string Column, ValueKind Kind, SegmentOperator[] Operators, decimal Min = 0, decimal Max = 0);

public static class SegmentFields
{
    private static readonly SegmentOperator[] InRange = [SegmentOperator.In, SegmentOperator.Range];
    private static readonly SegmentOperator[] InOnly = [SegmentOperator.In];
    private static readonly SegmentOperator[] RangeOnly = [SegmentOperator.Range];

    private static readonly Dictionary<SegmentField, FieldSpec> Specs = new()
    {
        [SegmentField.Tier] = new(SegmentTable.Customers, "c.tier", ValueKind.Tier, InRange),
        [SegmentField.RfmR] = new(SegmentTable.Scores, "s.r", ValueKind.Integer, InRange, 0, 5),
        [SegmentField.RfmF] = new(SegmentTable.Scores, "s.f", ValueKind.Integer, InRange, 0, 5),
        [SegmentField.RfmM] = new(SegmentTable.Scores, "s.m", ValueKind.Integer, InRange, 0, 5),
        [SegmentField.RfmGroup] = new(SegmentTable.Scores, "s.rfm_group", ValueKind.Text, InOnly),
        [SegmentField.ClvQuadrant] = new(SegmentTable.Scores, "s.quadrant", ValueKind.Text, InOnly),
        [SegmentField.LadderStage] = new(SegmentTable.Scores, "s.ladder_stage", ValueKind.Text, InOnly),
        [SegmentField.ChurnRisk] = new(SegmentTable.Scores, "s.churn", ValueKind.Text, InOnly),
        [SegmentField.PActive] = new(SegmentTable.Scores, "s.p_active", ValueKind.Fraction, RangeOnly, 0, 1),
        [SegmentField.Region] = new(SegmentTable.Customers, "c.region", ValueKind.Text, InOnly),
        [SegmentField.City] = new(SegmentTable.Customers, "c.city", ValueKind.Text, InOnly),
        [SegmentField.BirthdayMonth] = new(SegmentTable.Customers, "c.birthday_month", ValueKind.Integer, InRange, 1, 12),
        [SegmentField.LastOrder] = new(SegmentTable.Orders, "o.last_order_at", ValueKind.Time, [SegmentOperator.Before, SegmentOperator.After]),
        [SegmentField.NetSpend] = new(SegmentTable.Orders, "coalesce(o.net_spend, 0)", ValueKind.Money, RangeOnly, 0, 1_000_000_000_000m),
        [SegmentField.OrderCount] = new(SegmentTable.Orders, "coalesce(o.orders, 0)", ValueKind.Integer, RangeOnly, 0, int.MaxValue),
        [SegmentField.PointsBalance] = new(SegmentTable.Customers, "coalesce(c.points_balance, 0)", ValueKind.Integer, RangeOnly, long.MinValue, long.MaxValue),
        [SegmentField.Tags] = new(SegmentTable.Customers, "c.tags", ValueKind.Tags, [SegmentOperator.HasAny, SegmentOperator.HasAll]),
        [SegmentField.MarketingConsent] = new(SegmentTable.Customers, "c.marketing_consent", ValueKind.Flag, [SegmentOperator.IsTrue, SegmentOperator.IsFalse]),
    };

    public static FieldSpec? Find(SegmentField field) => Specs.GetValueOrDefault(field);

    /// <summary>The proto name of an enum value, e.g. SEGMENT_OPERATOR_RANGE, as callers see it.</summary>
    public static string Name<T>(T value) where T : struct, Enum =>
        typeof(T).GetField(value.ToString())?.GetCustomAttribute<OriginalNameAttribute>()?.Name ?? value.ToString();
}

/// <summary>The closed value sets a rule is checked against: tiers in order, RFM groups and ladder stages from configuration.</summary>
public sealed class SegmentVocabulary(CampaignsOptions options)
{
    private static readonly string[] Quadrants = ["vip", "growable", "maintain", "abandon"];
    private static readonly string[] Churn = ["low", "medium", "high"];

    public List<string> Tiers { get; } = [.. options.TierOrder];
    private readonly string[] _groups = [.. options.RfmGroups.Select(g => g.Name)];
    private readonly string[] _stages = [.. options.Ladder.Select(l => l.Stage).Append("prospect").Distinct()];

    /// <returns>The allowed values, or null for free text (region, city, tags).</returns>
    public IReadOnlyList<string>? AllowedValues(SegmentField field) => field switch
    {
        SegmentField.RfmGroup => _groups,
        SegmentField.ClvQuadrant => Quadrants,
        SegmentField.LadderStage => _stages,
        SegmentField.ChurnRisk => Churn,
        _ => null,
    };
}
