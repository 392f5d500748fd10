namespace Crm.Campaigns;

/// <summary>Settings under <c>Campaigns</c>. Empty lists take the defaults below (the seed's tables).</summary>
public sealed class CampaignsOptions
{
    /// <summary>The brand's time zone: calendar months, report periods and date ranges are taken in it.</summary>
    public string TimeZone { get; set; } = "Asia/Shanghai";

    /// <summary>Recency bands in calendar months since the last order (closed above): ≤1 → 5, ≤3 → 4, ≤6 → 3, ≤12 → 2, more → 1.</summary>
    public int[] RecencyMonths { get; set; } = [];
    /// <summary>Frequency bands (orders in the RFM window, closed above): ≤1 → 1, ≤5 → 2, ≤10 → 3, ≤23 → 4, more → 5.</summary>
    public int[] FrequencyMax { get; set; } = [];
    /// <summary>Monetary bands (average net order value in the RFM window, closed above): ≤500 → 1, ≤1,000 → 2, ≤3,000 → 3, ≤5,000 → 4, more → 5.</summary>
    public decimal[] MonetaryMax { get; set; } = [];
    /// <summary>The window of frequency and monetary, in months.</summary>
    public int RfmWindowMonths { get; set; } = 24;
    /// <summary>Named RFM groups, first match wins; each score as "4-5", "5" or "*".</summary>
    public List<RfmGroupRule> RfmGroups { get; set; } = [];

    /// <summary>Current value (quadrants, deciles) = net spend over this many months.</summary>
    public int CurrentValueMonths { get; set; } = 12;
    /// <summary>Quadrant split points; null = the median over the customers with orders.</summary>
    public decimal? CurrentValueSplit { get; set; }
    public decimal? FutureValueSplit { get; set; }
    public int DefaultHorizonDays { get; set; } = 365;
    /// <summary>Yearly discount rate of CLV (0.1 = 10%), applied month by month; 0 = undiscounted.</summary>
    public double AnnualDiscountRate { get; set; }

    /// <summary>Ladder stages, highest first; the first whose every minimum is met wins; none: prospect.</summary>
    public List<LadderRule> Ladder { get; set; } = [];
    /// <summary>Tier codes from lowest to highest (for the ladder's MinTier).</summary>
    public string[] TierOrder { get; set; } = [];

    public ChurnOptions Churn { get; set; } = new();

    public RecomputeOptions Recompute { get; set; } = new();

    /// <summary>
    /// How long the OrderPaid batch consumer waits after a batch's first message for more before applying it (above zero, at most 1 s).
    /// Longer: fewer, larger transactions (less CPU and fewer commits per order); shorter: less waiting when the messages are
    /// few. At 500 orders/s on two cores 20 ms took about a tenth off the service's CPU and a third off Postgres' per order
    /// against 5 ms (batches of about ten instead of two or three), which shortens the queues that make the lag's tail.
    /// </summary>
    public TimeSpan OrderPaidBatchTimeLimit { get; set; } = TimeSpan.FromMilliseconds(20);

    public void ApplyDefaults()
    {
        if (RecencyMonths.Length == 0) RecencyMonths = [1, 3, 6, 12];
        if (FrequencyMax.Length == 0) FrequencyMax = [1, 5, 10, 23];
        if (MonetaryMax.Length == 0) MonetaryMax = [500m, 1_000m, 3_000m, 5_000m];
        if (RfmGroups.Count == 0)
            RfmGroups =
            [
                new() { Name = "champions", R = "4-5", F = "4-5", M = "4-5" },
                new() { Name = "loyal", R = "3-5", F = "3-5" },
                new() { Name = "new", R = "5", F = "1" },
                new() { Name = "promising", R = "4-5", F = "1-2" },
                new() { Name = "at_risk", R = "1-2", F = "3-5" },
                new() { Name = "hibernating", R = "1-2", F = "1-2" },
                new() { Name = "needs_attention" },
            ];
        if (Ladder.Count == 0)
            Ladder =
            [
                new() { Stage = "partner", MinOrders = 20, MinTenureDays = 730, MinTier = "S4" },
                new() { Stage = "advocate", MinOrders = 10, MinTenureDays = 365, MinTier = "S3" },
                new() { Stage = "supporter", MinOrders = 5, MinTenureDays = 180 },
                new() { Stage = "client", MinOrders = 2 },
                new() { Stage = "customer", MinOrders = 1 },
            ];
        if (TierOrder.Length == 0) TierOrder = ["S1", "S2", "S3", "S4", "S5", "S6"];
    }
}

public sealed class RfmGroupRule
{
    public string Name { get; set; } = "";
    public string R { get; set; } = "*";
    public string F { get; set; } = "*";
    public string M { get; set; } = "*";
}

public sealed class LadderRule
{
    public string Stage { get; set; } = "";
    public int MinOrders { get; set; }
    public int MinTenureDays { get; set; }
    public string? MinTier { get; set; }
}

public sealed class ChurnOptions
{
    /// <summary>P(active) below this is high risk, below MediumBelow medium.</summary>
    public double HighBelow { get; set; } = 0.3;
    public double MediumBelow { get; set; } = 0.6;
    /// <summary>Without the model (one order only, or no fit): days since the last order over this many usual intervals is high risk…</summary>
    public double HighMultiple { get; set; } = 3.0;
    /// <summary>…and over this many medium.</summary>
    public double MediumMultiple { get; set; } = 1.5;
    /// <summary>The usual interval when neither the customer nor the population has repeat orders to measure it.</summary>
    public double DefaultIntervalDays { get; set; } = 90;
}

public sealed class RecomputeOptions
{
    /// <summary>Runs the full recompute of the stored scores every day at <see cref="DailyAt"/> (brand time).</summary>
    public bool Scheduled { get; set; } = true;
    /// <summary>Local time of day in the brand's time zone, "HH:mm".</summary>
    public string DailyAt { get; set; } = "03:00";
    /// <summary>Whether the scheduled run fits the models again first (the RPC says so per call).</summary>
    public bool RefitModels { get; set; } = true;
    /// <summary>
    /// The models are fitted on at most this many buyers, drawn at random (a stable hash of the customer id), and then score
    /// everyone: a fit's cost is evaluations × customers (seconds per thousand buyers), and ten thousand pin the four and
    /// three parameters to within a few per cent.
    /// </summary>
    public int FitSampleSize { get; set; } = 10_000;
    /// <summary>Threads that score customers and connections that write them (0 = one per core).</summary>
    public int Parallelism { get; set; }
    /// <summary>Customers per scoring chunk.</summary>
    public int ChunkSize { get; set; } = 50_000;

    public int EffectiveParallelism => Parallelism > 0 ? Parallelism : Environment.ProcessorCount;
}
