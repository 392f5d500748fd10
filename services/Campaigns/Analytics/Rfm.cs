namespace Crm.Campaigns.Analytics;

/// <summary>
/// RFM scores 1-5 from the configured tables. Every band is closed above: a value exactly on a boundary scores in the
/// band that ends there (monetary 500.00 → 1, 500.01 → 2, 5,000.00 → 4; frequency 23 → 4, 24 → 5; an order exactly
/// one calendar month before as-of → recency 5, exactly twelve months → 2).
/// </summary>
public sealed class RfmTable(CampaignsOptions options)
{
    public int Recency(DateTime lastOrderLocal, DateTime asOfLocal)
    {
        var months = options.RecencyMonths;
        for (var i = 0; i < months.Length; i++)
            if (lastOrderLocal >= asOfLocal.AddMonths(-months[i])) return 5 - i;
        return 5 - months.Length;
    }

    public int Frequency(int orders)
    {
        var max = options.FrequencyMax;
        for (var i = 0; i < max.Length; i++)
            if (orders <= max[i]) return i + 1;
        return max.Length + 1;
    }

    public int Monetary(decimal averageOrderValue)
    {
        var max = options.MonetaryMax;
        for (var i = 0; i < max.Length; i++)
            if (averageOrderValue <= max[i]) return i + 1;
        return max.Length + 1;
    }

    // Scores 0-9 each: the group of every cell worked out once, not per customer (a million customers a recompute).
    private string?[]? _groups;

    public string Group(int r, int f, int m)
    {
        if (r is < 0 or > 9 || f is < 0 or > 9 || m is < 0 or > 9) return GroupOf(r, f, m);
        var groups = _groups ??= Enumerable.Range(0, 1000).Select(i => GroupOf(i / 100, i / 10 % 10, i % 10)).ToArray();
        return groups[r * 100 + f * 10 + m]!;
    }

    private string GroupOf(int r, int f, int m) =>
        options.RfmGroups.FirstOrDefault(g => Matches(g.R, r) && Matches(g.F, f) && Matches(g.M, m))?.Name ?? "others";

    /// <summary>"*" or empty: any; "4-5": 4 to 5; "5": exactly 5.</summary>
    internal static bool Matches(string? pattern, int score)
    {
        if (string.IsNullOrWhiteSpace(pattern) || pattern.Trim() == "*") return true;
        var parts = pattern.Split('-', 2, StringSplitOptions.TrimEntries);
        var low = int.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture);
        var high = parts.Length == 2 ? int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture) : low;
        return score >= low && score <= high;
    }
}
