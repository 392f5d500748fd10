using System.Globalization;
using System.Text;
using Crm.Campaigns.V1;
using Crm.ServiceDefaults.Errors;
using Dapper;

namespace Crm.Campaigns.Segments;

/// <summary>
/// A rule tree checked and turned into a SQL condition over <c>customers c</c>, <c>customer_scores s</c> and the order
/// aggregate <c>o</c>. The SQL text is made only of fixed fragments chosen by field and operator; every value the caller
/// sent goes in as a bound parameter. Each condition is wrapped in coalesce(…, false), so a missing value (no score
/// row, no region) makes the condition false and its <c>not</c> true, never NULL.
/// </summary>
public sealed class SegmentFilter
{
    public const int MaxDepth = 6;
    public const int MaxRules = 100;
    public const int MaxDaysAgo = 36_500;

    public string Where { get; }
    public DynamicParameters Parameters { get; }
    public bool NeedsScores { get; }
    public bool NeedsOrders { get; }

    private SegmentFilter(string where, DynamicParameters parameters, bool scores, bool orders) =>
        (Where, Parameters, NeedsScores, NeedsOrders) = (where, parameters, scores, orders);

    /// <summary>The FROM clause the condition needs: the score and order joins only when a rule reads them.</summary>
    public string From => "customers c"
        + (NeedsScores ? " LEFT JOIN customer_scores s ON s.customer_id = c.customer_id" : "")
        + (NeedsOrders ? " " + """
             LEFT JOIN (SELECT customer_id, count(*) AS orders, sum(amount_paid - amount_refunded) AS net_spend, max(paid_at) AS last_order_at
                        FROM orders WHERE paid_at IS NOT NULL AND amount_paid > amount_refunded GROUP BY customer_id) o ON o.customer_id = c.customer_id
             """ : "");

    /// <summary>Checks <paramref name="rule"/>, adding a violation per fault (named by its path under <paramref name="path"/>); null when invalid.</summary>
    public static SegmentFilter? Build(SegmentRule? rule, string path, Validator v, SegmentVocabulary vocabulary, DateTime now)
    {
        if (rule is null)
        {
            v.Add(path, "is required: a rule tree (all, any, not or a condition).");
            return null;
        }
        var builder = new Builder(v, vocabulary, now);
        var sql = builder.Rule(rule, path, 1);
        if (builder.Count > MaxRules) v.Add(path, $"has more than {MaxRules} rules.");
        return builder.Faults == 0 && builder.Count <= MaxRules ? new SegmentFilter(sql, builder.Parameters, builder.Scores, builder.Orders) : null;
    }

    private sealed class Builder(Validator v, SegmentVocabulary vocabulary, DateTime now)
    {
        public readonly DynamicParameters Parameters = new();
        public int Count, Faults;
        public bool Scores, Orders;
        private int _next;

        private void Fault(string field, string description)
        {
            Faults++;
            if (Faults <= 20) v.Add(field, description);
        }

        private string Bind(object value)
        {
            var name = "p" + _next++.ToString(CultureInfo.InvariantCulture);
            Parameters.Add(name, value);
            return "@" + name;
        }

        public string Rule(SegmentRule rule, string path, int depth)
        {
            Count++;
            if (Count > MaxRules) return "false";
            if (depth > MaxDepth)
            {
                Fault(path, $"is nested too deep: at most {MaxDepth} levels.");
                return "false";
            }
            var hasCondition = rule.Field != SegmentField.Unspecified || rule.Op != SegmentOperator.Unspecified || rule.Values.Count > 0
                               || rule.Min != "" || rule.Max != "" || rule.At is not null || rule.DaysAgo != 0;
            var kinds = (rule.All.Count > 0 ? 1 : 0) + (rule.Any.Count > 0 ? 1 : 0) + (rule.Not is not null ? 1 : 0) + (hasCondition ? 1 : 0);
            if (kinds != 1)
            {
                Fault(path, kinds == 0 ? "is empty: set one of all, any, not or a condition (field, op)." : "sets more than one of all, any, not and a condition.");
                return "false";
            }
            if (rule.All.Count > 0) return Group(rule.All, path + ".all", " AND ", depth);
            if (rule.Any.Count > 0) return Group(rule.Any, path + ".any", " OR ", depth);
            if (rule.Not is not null) return "NOT (" + Rule(rule.Not, path + ".not", depth + 1) + ")";
            return Condition(rule, path);
        }

        private string Group(IList<SegmentRule> rules, string path, string join, int depth)
        {
            var parts = new StringBuilder("(");
            for (var i = 0; i < rules.Count; i++)
            {
                if (i > 0) parts.Append(join);
                parts.Append(Rule(rules[i], $"{path}[{i}]", depth + 1));
            }
            return parts.Append(')').ToString();
        }

        private string Condition(SegmentRule rule, string path)
        {
            var spec = SegmentFields.Find(rule.Field);
            if (spec is null)
            {
                Fault(path + ".field", "must name a field.");
                return "false";
            }
            if (!spec.Operators.Contains(rule.Op))
            {
                Fault(path + ".op", $"must be one of {string.Join(", ", spec.Operators.Select(SegmentFields.Name))} for {SegmentFields.Name(rule.Field)}.");
                return "false";
            }
            if (spec.Table == SegmentTable.Scores) Scores = true;
            if (spec.Table == SegmentTable.Orders) Orders = true;
            var faults = Faults;
            var sql = rule.Op switch
            {
                SegmentOperator.In => In(rule, path, spec),
                SegmentOperator.Range => Range(rule, path, spec),
                SegmentOperator.Before or SegmentOperator.After => When(rule, path, spec),
                SegmentOperator.HasAny => $"{spec.Column} && {Bind(Texts(rule, path, spec))}",
                SegmentOperator.HasAll => $"{spec.Column} @> {Bind(Texts(rule, path, spec))}",
                SegmentOperator.IsTrue => spec.Column,
                _ => "NOT " + spec.Column,
            };
            Unused(rule, path);
            return Faults > faults ? "false" : $"coalesce({sql}, false)";
        }

        /// <summary>Operands the operator does not read are refused rather than silently ignored.</summary>
        private void Unused(SegmentRule rule, string path)
        {
            var op = rule.Op;
            if (rule.Values.Count > 0 && op is not (SegmentOperator.In or SegmentOperator.HasAny or SegmentOperator.HasAll))
                Fault(path + ".values", $"is not used by {SegmentFields.Name(op)}.");
            if ((rule.Min != "" || rule.Max != "") && op != SegmentOperator.Range)
                Fault(path + (rule.Min != "" ? ".min" : ".max"), $"is not used by {SegmentFields.Name(op)}.");
            if ((rule.At is not null || rule.DaysAgo != 0) && op is not (SegmentOperator.Before or SegmentOperator.After))
                Fault(path + (rule.At is not null ? ".at" : ".days_ago"), $"is not used by {SegmentFields.Name(op)}.");
        }

        private string In(SegmentRule rule, string path, FieldSpec spec)
        {
            if (spec.Kind is ValueKind.Text or ValueKind.Tier) return $"{spec.Column} = ANY({Bind(Texts(rule, path, spec))})";
            var numbers = new List<decimal>();
            if (rule.Values.Count == 0) Fault(path + ".values", "needs at least one value.");
            for (var i = 0; i < rule.Values.Count; i++)
                if (Number(rule.Values[i], $"{path}.values[{i}]", spec) is { } n) numbers.Add(n);
            return spec.Kind == ValueKind.Fraction
                ? $"{spec.Column} = ANY({Bind(numbers.Select(n => (double)n).ToArray())})"
                : $"{spec.Column} = ANY({Bind(numbers.ToArray())})";
        }

        private string[] Texts(SegmentRule rule, string path, FieldSpec spec)
        {
            if (rule.Values.Count == 0) Fault(path + ".values", "needs at least one value.");
            var allowed = spec.Kind == ValueKind.Tier ? vocabulary.Tiers : vocabulary.AllowedValues(rule.Field);
            for (var i = 0; i < rule.Values.Count; i++)
            {
                var value = rule.Values[i];
                if (string.IsNullOrWhiteSpace(value)) Fault($"{path}.values[{i}]", "must not be empty.");
                else if (allowed is not null && !allowed.Contains(value))
                    Fault($"{path}.values[{i}]", $"'{Echo.Cut(value)}' is not one of {string.Join(", ", allowed)}.");
            }
            return rule.Values.ToArray();
        }

        private string Range(SegmentRule rule, string path, FieldSpec spec)
        {
            if (rule.Min == "" && rule.Max == "")
            {
                Fault(path + ".min", "RANGE needs min, max or both.");
                return "false";
            }
            if (spec.Kind == ValueKind.Tier)
            {
                var low = rule.Min == "" ? 0 : TierIndex(rule.Min, path + ".min");
                var high = rule.Max == "" ? vocabulary.Tiers.Count - 1 : TierIndex(rule.Max, path + ".max");
                if (low > high && low >= 0 && high >= 0) Fault(path + ".max", "is below min.");
                return $"{spec.Column} = ANY({Bind(vocabulary.Tiers.Skip(Math.Max(low, 0)).Take(Math.Max(high - low + 1, 0)).ToArray())})";
            }
            var min = rule.Min == "" ? null : Number(rule.Min, path + ".min", spec);
            var max = rule.Max == "" ? null : Number(rule.Max, path + ".max", spec);
            if (min > max) Fault(path + ".max", "is below min.");
            var parts = new List<string>();
            if (min is { } a) parts.Add($"{spec.Column} >= {Bind(spec.Kind == ValueKind.Fraction ? (double)a : a)}");
            if (max is { } b) parts.Add($"{spec.Column} <= {Bind(spec.Kind == ValueKind.Fraction ? (double)b : b)}");
            return string.Join(" AND ", parts);
        }

        private int TierIndex(string code, string field)
        {
            var index = vocabulary.Tiers.IndexOf(code);
            if (index < 0) Fault(field, $"'{Echo.Cut(code)}' is not a tier ({string.Join(", ", vocabulary.Tiers)}).");
            return index;
        }

        private decimal? Number(string text, string field, FieldSpec spec)
        {
            if (!decimal.TryParse(text, NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var n)
                || text.Contains('\0'))
            {
                Fault(field, $"'{Echo.Cut(text)}' is not a number.");
                return null;
            }
            var ok = spec.Kind switch
            {
                ValueKind.Integer => decimal.Truncate(n) == n && n >= spec.Min && n <= spec.Max,
                ValueKind.Money => decimal.Round(n, 2) == n && n >= spec.Min && n <= spec.Max,
                _ => n >= spec.Min && n <= spec.Max,
            };
            if (!ok)
            {
                var what = spec.Kind switch { ValueKind.Integer => "a whole number", ValueKind.Money => "an amount with at most two decimals", _ => "a number" };
                Fault(field, $"must be {what} from {spec.Min.ToString(CultureInfo.InvariantCulture)} to {spec.Max.ToString(CultureInfo.InvariantCulture)}.");
                return null;
            }
            return n;
        }

        private string When(SegmentRule rule, string path, FieldSpec spec)
        {
            DateTime at;
            if ((rule.At is not null) == (rule.DaysAgo != 0))
            {
                Fault(path + ".at", "set exactly one of at and days_ago.");
                return "false";
            }
            if (rule.At is not null) at = rule.At.ToDateTime();
            else if (rule.DaysAgo is < 1 or > MaxDaysAgo)
            {
                Fault(path + ".days_ago", $"must be from 1 to {MaxDaysAgo}.");
                return "false";
            }
            else at = now.AddDays(-rule.DaysAgo);
            return $"{spec.Column} {(rule.Op == SegmentOperator.Before ? "<" : ">")} {Bind(at)}";
        }
    }
}
