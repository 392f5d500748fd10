using Crm.Campaigns.Models;

namespace Crm.Campaigns.Analytics;

/// <summary>What the read model knows of one customer as of a date (orders net of refunds; fully refunded ones left out).</summary>
public sealed record CustomerFacts(
    Guid CustomerId,
    int Orders,
    decimal NetSpend,
    DateTime? FirstOrderAt,
    DateTime? LastOrderAt,
    decimal FirstOrderNet,
    int OrdersCurrent,
    decimal SpendCurrent,
    int OrdersWindow,
    decimal SpendWindow,
    string? Tier = null,
    long? PointsBalance = null,
    int? BirthdayMonth = null,
    string? Region = null,
    IReadOnlyList<string>? Tags = null,
    bool MarketingConsent = false)
{
    /// <summary>The models' view in days: repeat purchases, the last one after the first, observed since the first.</summary>
    public PurchaseHistory History(DateTime asOfUtc) => Orders == 0
        ? default
        : new PurchaseHistory(Orders - 1, (LastOrderAt!.Value - FirstOrderAt!.Value).TotalDays, Math.Max((asOfUtc - FirstOrderAt.Value).TotalDays, 0),
            Orders > 1 ? (double)((NetSpend - FirstOrderNet) / (Orders - 1)) : 0);
}

public sealed record FittedModels(BgNbd BgNbd, double BgNbdLogLikelihood, int BgNbdCustomers, GammaGamma GammaGamma, double GammaGammaLogLikelihood,
    int GammaGammaCustomers, DateTime AsOf, DateTime FittedAt);

public enum ChurnLevel { Unspecified = 0, Low = 1, Medium = 2, High = 3 }
public enum QuadrantKind { Unspecified = 0, Vip = 1, Growable = 2, Maintain = 3, Abandon = 4 }

public sealed record CustomerScore(
    CustomerFacts Facts,
    int R, int F, int M, string Cell, string Group,
    double PActive, double ExpectedPurchases, decimal ExpectedOrderValue, decimal Clv,
    QuadrantKind Quadrant, int Decile, string LadderStage, ChurnLevel Churn, string ChurnBasis, int DaysSinceLastOrder, bool ModelUsed)
{
    /// <summary>The stored recompute run this score was read from; 0 when computed on request.</summary>
    public long RunId { get; init; }
}

public sealed record Bucket(string Key, int Count, decimal Revenue);

/// <summary>Everything computed over one population as of one date: pure, so the rules are unit-tested with concrete numbers.</summary>
public sealed class Engine(CampaignsOptions options, TimeZoneInfo zone)
{
    private readonly RfmTable _rfm = new(options);

    public DateTime ToLocal(DateTime utc) => TimeZoneInfo.ConvertTimeFromUtc(DateTime.SpecifyKind(utc, DateTimeKind.Utc), zone);
    public DateTime ToUtc(DateTime local) => TimeZoneInfo.ConvertTimeToUtc(DateTime.SpecifyKind(local, DateTimeKind.Unspecified), zone);

    /// <summary>The start of the window of <paramref name="months"/> calendar months (brand time) ending at as-of.</summary>
    public DateTime MonthsBefore(DateTime asOfUtc, int months) => ToUtc(ToLocal(asOfUtc).AddMonths(-months));

    /// <summary>
    /// Scores <paramref name="population"/>. The population-wide parts (deciles, medians, the usual interval) are computed
    /// once over everyone; the per-customer parts (models, RFM, ladder, churn) in chunks of <paramref name="chunkSize"/> on up
    /// to <paramref name="parallelism"/> threads. Each customer's score depends only on their facts and the population-wide
    /// values, so any chunking gives the same scores in the same order.
    /// </summary>
    public IReadOnlyList<CustomerScore> Score(IReadOnlyList<CustomerFacts> population, DateTime asOfUtc, FittedModels? models, int horizonDays,
        int parallelism = 1, int chunkSize = 50_000, PopulationRanks? ranks = null, Action<string>? phaseDone = null)
    {
        var scored = ScoreAsRead(population, asOfUtc, models, horizonDays, parallelism, chunkSize, ranks, phaseDone);
        var scores = new CustomerScore[scored.Count];
        ForChunks(scores.Length, Math.Max(parallelism, 1), Math.Max(chunkSize, 1), (from, to) =>
        {
            for (var i = from; i < to; i++) scores[i] = scored[i];
        });
        phaseDone?.Invoke("RFM, quadrant, ladder, churn");
        return scores;
    }

    /// <summary>
    /// As <see cref="Score"/>, but only the models' values are computed now: each customer's score is worked out when it is
    /// read (every read anew), so the recompute streams a million scores into COPY without holding a million score objects.
    /// </summary>
    public IReadOnlyList<CustomerScore> ScoreAsRead(IReadOnlyList<CustomerFacts> population, DateTime asOfUtc, FittedModels? models, int horizonDays,
        int parallelism = 1, int chunkSize = 50_000, PopulationRanks? ranks = null, Action<string>? phaseDone = null)
    {
        var asOfLocal = ToLocal(asOfUtc);
        var n = population.Count;
        parallelism = Math.Max(parallelism, 1);
        chunkSize = Math.Max(chunkSize, 1);
        ranks ??= Rank(population);
        if (ranks.Decile.Length != n) throw new ArgumentException("The ranks are of another population.", nameof(ranks));
        var (decile, populationInterval, currentSplit) = (ranks.Decile, ranks.PopulationInterval, ranks.CurrentSplit);

        // The models' values per buyer (the costly part: special functions per customer), by index into the population.
        var values = new ModelValues[n];
        if (models is not null)
            ForChunks(n, parallelism, chunkSize, (from, to) =>
            {
                for (var i = from; i < to; i++)
                    if (population[i].Orders > 0) values[i] = Model(models, population[i], asOfUtc, horizonDays);
            });

        var futureSplit = options.FutureValueSplit ?? (models is not null && population.Any(c => c.Orders > 0)
            ? Median(values.Where(v => v.Present).Select(v => v.Clv).ToList()) : 0);
        phaseDone?.Invoke("model values");
        return new ScoresAsRead(n, i => ScoreOne(population[i], values[i], decile[i], asOfUtc, asOfLocal, populationInterval, currentSplit, futureSplit));
    }

    private sealed class ScoresAsRead(int count, Func<int, CustomerScore> score) : IReadOnlyList<CustomerScore>
    {
        public CustomerScore this[int index] => (uint)index < (uint)count ? score(index) : throw new ArgumentOutOfRangeException(nameof(index));
        public int Count => count;
        public IEnumerator<CustomerScore> GetEnumerator()
        {
            for (var i = 0; i < count; i++) yield return score(i);
        }
        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }

    /// <summary>Each customer's decile (0 = no current spend) and the population-wide values that need no model.</summary>
    public sealed record PopulationRanks(int[] Decile, double PopulationInterval, decimal CurrentSplit);

    /// <summary>Higher spend first, then the smaller id.</summary>
    private readonly record struct DecileKey(decimal Spend, Guid Id, int Index) : IComparable<DecileKey>
    {
        public int CompareTo(DecileKey other)
        {
            var bySpend = other.Spend.CompareTo(Spend);
            return bySpend != 0 ? bySpend : Id.CompareTo(other.Id);
        }
    }

    /// <summary>
    /// The population-wide values that do not depend on the models (so a recompute works them out while the models are
    /// fitted): deciles by current spend, the usual interval, the current-value split.
    /// </summary>
    public PopulationRanks Rank(IReadOnlyList<CustomerFacts> population)
    {
        var n = population.Count;
        // Deciles by current spend: 1 = top tenth; ties broken by id so the answer is stable.
        // The keys sorted by value (no delegate, no lookup through the population per comparison): a million in well under a second.
        var ranked = new List<DecileKey>(n);
        for (var i = 0; i < n; i++)
            if (population[i].SpendCurrent > 0) ranked.Add(new DecileKey(population[i].SpendCurrent, population[i].CustomerId, i));
        ranked.Sort();
        var decile = new int[n];
        for (var i = 0; i < ranked.Count; i++) decile[ranked[i].Index] = DecileOf(i, ranked.Count);

        // Usual interval for customers without repeat orders: the median of the repeat buyers' mean intervals.
        var intervals = population.Where(c => c.Orders > 1).Select(c => (c.LastOrderAt!.Value - c.FirstOrderAt!.Value).TotalDays / (c.Orders - 1)).ToList();
        var populationInterval = intervals.Count > 0 ? Median(intervals) : options.Churn.DefaultIntervalDays;

        var currentSplit = options.CurrentValueSplit ?? (population.Any(c => c.Orders > 0) ? Median(population.Where(c => c.Orders > 0).Select(c => c.SpendCurrent).ToList()) : 0);
        return new PopulationRanks(decile, populationInterval, currentSplit);
    }

    private readonly record struct ModelValues(bool Present, double P, double E, decimal M, decimal Clv);

    private ModelValues Model(FittedModels models, CustomerFacts c, DateTime asOfUtc, int horizonDays)
    {
        var h = c.History(asOfUtc);
        // A degenerate spend fit (q ≤ 1 has no finite mean) falls back to the customer's own average.
        var modelled = models.GammaGamma.Q > 1 ? models.GammaGamma.ExpectedAverageValue(h.X, h.MeanRepeatValue) : double.NaN;
        var expectedValue = Finite(modelled) ?? (h.X > 0 ? (decimal)h.MeanRepeatValue : c.NetSpend / c.Orders);
        var expected = Finite(models.BgNbd.ConditionalExpectedPurchases(horizonDays, h.X, h.Tx, h.T));
        // Undiscounted, CLV is E[Y(horizon)] × E[M]: the expected purchases just computed, not a second evaluation (see Clv).
        var clv = options.AnnualDiscountRate == 0
            ? expected is { } e ? decimal.Round(e * expectedValue, 2) : 0
            : Clv(models.BgNbd, h, expectedValue, horizonDays, options.AnnualDiscountRate);
        return new ModelValues(true, Finite(models.BgNbd.ProbabilityAlive(h.X, h.Tx, h.T)) is { } p ? (double)p : 0,
            expected is { } x ? (double)x : 0, decimal.Round(expectedValue, 2), clv);
    }

    private CustomerScore ScoreOne(CustomerFacts c, ModelValues v, int decile, DateTime asOfUtc, DateTime asOfLocal, double populationInterval,
        decimal currentSplit, decimal futureSplit)
    {
        if (c.Orders == 0)
            return new CustomerScore(c, 0, 0, 0, "", "", 0, 0, 0, 0, QuadrantKind.Unspecified, 0, Ladder(c, asOfUtc), ChurnLevel.Unspecified, "", 0, false);
        var r = _rfm.Recency(ToLocal(c.LastOrderAt!.Value), asOfLocal);
        var f = _rfm.Frequency(c.OrdersWindow);
        var m = _rfm.Monetary(c.OrdersWindow > 0 ? decimal.Round(c.SpendWindow / c.OrdersWindow, 2) : 0);
        var daysSince = (int)Math.Floor((asOfUtc - c.LastOrderAt.Value).TotalDays);
        var hasModel = v.Present;
        var quadrant = hasModel ? Quadrant(c.SpendCurrent > currentSplit, v.Clv > futureSplit) : QuadrantKind.Unspecified;

        ChurnLevel churn;
        string basis;
        if (hasModel && c.Orders > 1)
        {
            churn = v.P < options.Churn.HighBelow ? ChurnLevel.High : v.P < options.Churn.MediumBelow ? ChurnLevel.Medium : ChurnLevel.Low;
            basis = "model";
        }
        else
        {
            var usual = c.Orders > 1 ? (c.LastOrderAt.Value - c.FirstOrderAt!.Value).TotalDays / (c.Orders - 1) : populationInterval;
            usual = Math.Max(usual, 1);
            churn = daysSince > options.Churn.HighMultiple * usual ? ChurnLevel.High
                : daysSince > options.Churn.MediumMultiple * usual ? ChurnLevel.Medium : ChurnLevel.Low;
            basis = "interval";
        }
        return new CustomerScore(c, r, f, m, Cell(r, f, m), _rfm.Group(r, f, m), hasModel ? v.P : 0, hasModel ? v.E : 0,
            hasModel ? v.M : 0, hasModel ? v.Clv : 0, quadrant, decile, Ladder(c, asOfUtc), churn, basis, daysSince, hasModel);
    }

    /// <summary>Runs <paramref name="body"/>(from, to) over [0, count) in chunks, at most <paramref name="parallelism"/> at a time.</summary>
    private static void ForChunks(int count, int parallelism, int chunkSize, Action<int, int> body)
    {
        var chunks = (int)(((long)count + chunkSize - 1) / chunkSize);
        if (parallelism == 1 || chunks <= 1)
        {
            for (var k = 0; k < chunks; k++) body((int)((long)k * chunkSize), (int)Math.Min(count, (long)(k + 1) * chunkSize));
            return;
        }
        Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = parallelism },
            k => body((int)((long)k * chunkSize), (int)Math.Min(count, (long)(k + 1) * chunkSize)));
    }

    // One string per RFM cell (scores 0-9), shared by every customer in it: a million scores then hold 125 strings, not a million.
    private static readonly string[] Cells = Enumerable.Range(0, 1000).Select(i => i.ToString("000", System.Globalization.CultureInfo.InvariantCulture)).ToArray();

    private static string Cell(int r, int f, int m) => r is >= 0 and <= 9 && f is >= 0 and <= 9 && m is >= 0 and <= 9 ? Cells[r * 100 + f * 10 + m] : $"{r}{f}{m}";

    /// <summary>Index i (0-based, best first) of n ranked items → its tenth, 1-10.</summary>
    public static int DecileOf(int index, int count) => index * 10 / count + 1;

    public static QuadrantKind Quadrant(bool highCurrent, bool highFuture) => (highCurrent, highFuture) switch
    {
        (true, true) => QuadrantKind.Vip,
        (false, true) => QuadrantKind.Growable,
        (true, false) => QuadrantKind.Maintain,
        _ => QuadrantKind.Abandon,
    };

    /// <summary>
    /// Σ over months k of (E[Y(t_k)] − E[Y(t_{k−1})]) × E[M] / (1 + d)^(t_k / 365), t_k = min(30k, horizon): with d = 0 simply
    /// E[Y(horizon)] × E[M].
    /// </summary>
    public static decimal Clv(BgNbd model, PurchaseHistory h, decimal expectedValue, int horizonDays, double annualDiscountRate)
    {
        // Undiscounted, the monthly sum telescopes to E[Y(horizon)]: one evaluation instead of thirteen (a million customers a run).
        if (annualDiscountRate == 0)
            return Finite(model.ConditionalExpectedPurchases(horizonDays, h.X, h.Tx, h.T)) is { } expected ? decimal.Round(expected * expectedValue, 2) : 0;
        double total = 0, previous = 0;
        for (var t = Math.Min(30, horizonDays); ; t = Math.Min(t + 30, horizonDays))
        {
            var expected = model.ConditionalExpectedPurchases(t, h.X, h.Tx, h.T);
            total += (expected - previous) / Math.Pow(1 + annualDiscountRate, t / 365.0);
            previous = expected;
            if (t >= horizonDays) break;
        }
        return Finite(total) is { } sum ? decimal.Round(sum * expectedValue, 2) : 0;
    }

    /// <summary>The value as a decimal, or null for NaN, infinity or beyond decimal's range.</summary>
    public static decimal? Finite(double value) =>
        double.IsFinite(value) && Math.Abs(value) < 1e15 ? (decimal)value : null;

    public string Ladder(CustomerFacts c, DateTime asOfUtc)
    {
        var tenure = c.FirstOrderAt is { } first ? (asOfUtc - first).TotalDays : 0;
        var tierRank = c.Tier is null ? -1 : Array.IndexOf(options.TierOrder, c.Tier);
        foreach (var rule in options.Ladder)
        {
            if (c.Orders < rule.MinOrders || tenure < rule.MinTenureDays) continue;
            if (!string.IsNullOrEmpty(rule.MinTier) && tierRank < Array.IndexOf(options.TierOrder, rule.MinTier)) continue;
            return rule.Stage;
        }
        return "prospect";
    }

    /// <summary>Customers in tenths by current spend (1 = top), with each tenth's revenue.</summary>
    public static IReadOnlyList<Bucket> Deciles(IReadOnlyList<decimal> values)
    {
        var sorted = values.Where(v => v > 0).OrderByDescending(v => v).ToList();
        var buckets = Enumerable.Range(1, 10).Select(d => (Count: 0, Revenue: 0m)).ToArray();
        for (var i = 0; i < sorted.Count; i++)
        {
            var d = DecileOf(i, sorted.Count) - 1;
            buckets[d] = (buckets[d].Count + 1, buckets[d].Revenue + sorted[i]);
        }
        return buckets.Select((b, i) => new Bucket((i + 1).ToString(System.Globalization.CultureInfo.InvariantCulture), b.Count, b.Revenue)).ToList();
    }

    public static decimal Median(IReadOnlyList<decimal> values)
    {
        var s = values.ToArray();
        Array.Sort(s);
        return s.Length == 0 ? 0 : s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }

    public static double Median(IReadOnlyList<double> values)
    {
        var s = values.ToArray();
        Array.Sort(s);
        return s.Length == 0 ? 0 : s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }

    /// <summary>Fits both models on the buyers' histories; null when there is not enough to fit (no repeat buyer).</summary>
    public static FittedModels? Fit(IReadOnlyList<CustomerFacts> population, DateTime asOfUtc, DateTime now)
    {
        var histories = population.Where(c => c.Orders > 0).Select(c => c.History(asOfUtc)).ToList();
        if (histories.Count(h => h.X > 0 && h.MeanRepeatValue > 0) < 2) return null;
        var (bg, bgLl) = BgNbd.Fit(histories);
        var (gg, ggLl) = GammaGamma.Fit(histories);
        return new FittedModels(bg, bgLl, histories.Count, gg, ggLl, histories.Count(h => h.X > 0 && h.MeanRepeatValue > 0), asOfUtc, now);
    }
}
