using Crm.Campaigns;
using Crm.Campaigns.Analytics;
using Crm.Campaigns.Models;

namespace Crm.IntegrationTests.Campaigns;

/// <summary>
/// The recompute scores customers in parallel chunks (Campaigns:Recompute:Parallelism, ChunkSize): any chunking must give
/// exactly the scores of one chunk on one thread — the population-wide values (deciles, medians, the usual interval) are
/// taken over everyone, never per chunk.
/// </summary>
public class RecomputeChunkingTests
{
    private static readonly DateTime AsOf = new(2026, 11, 26, 4, 0, 0, DateTimeKind.Utc);

    /// <summary>2,000 customers with seeded facts: a tenth without orders, some with one order, ties of spend for the deciles.</summary>
    internal static List<CustomerFacts> Fixture()
    {
        var random = new Random(20261126);
        var tiers = new[] { null, "S1", "S2", "S3", "S4" };
        var facts = new List<CustomerFacts>();
        for (var i = 0; i < 2_000; i++)
        {
            var id = new Guid(random.Next(), (short)random.Next(short.MaxValue), (short)random.Next(short.MaxValue), 1, 2, 3, 4, 5, 6, 7, (byte)(i % 256));
            if (i % 10 == 0)
            {
                facts.Add(new CustomerFacts(id, 0, 0, null, null, 0, 0, 0, 0, 0, tiers[i % 5]));
                continue;
            }
            var orders = 1 + random.Next(30);
            var first = AsOf.AddDays(-random.Next(30, 1_000)).AddMinutes(-random.Next(1_440));
            var last = orders == 1 ? first : first.AddDays((AsOf - first).TotalDays * random.NextDouble());
            var spend = Math.Round(100m * random.Next(1, 200), 2); // coarse: many equal spends, so ties are ranked by id
            var current = last > AsOf.AddMonths(-12) ? spend / 2 : 0;
            facts.Add(new CustomerFacts(id, orders, spend, first, last, Math.Round(spend / orders, 2), current > 0 ? Math.Max(1, orders / 2) : 0, current,
                orders, spend, tiers[i % 5]));
        }
        return facts;
    }

    [Fact]
    public void Scoring_in_parallel_chunks_gives_exactly_the_single_chunk_scores()
    {
        var options = new CampaignsOptions();
        options.ApplyDefaults();
        var engine = new Engine(options, TimeZoneInfo.FindSystemTimeZoneById(options.TimeZone));
        var models = new FittedModels(new BgNbd(0.47, 8.7, 0.73, 6.6), -1, 1_800, new GammaGamma(5.5, 4.1, 827.6), -1, 1_500, AsOf, AsOf);
        var population = Fixture();

        var whole = engine.Score(population, AsOf, models, 365, parallelism: 1, chunkSize: int.MaxValue);
        var chunked = engine.Score(population, AsOf, models, 365, parallelism: 4, chunkSize: 37);

        Assert.Equal(2_000, whole.Count);
        Assert.Equal(whole, chunked); // records: every field, customer by customer, in the same order
        // The fixture does reach what chunking could break: every decile, every quadrant, model and interval churn.
        Assert.Equal(Enumerable.Range(1, 10), whole.Where(s => s.Decile > 0).Select(s => s.Decile).Distinct().Order());
        Assert.Equal(4, whole.Select(s => s.Quadrant).Where(q => q != QuadrantKind.Unspecified).Distinct().Count());
        Assert.Equal(["interval", "model"], whole.Where(s => s.Facts.Orders > 0).Select(s => s.ChurnBasis).Distinct().Order());
        Assert.Equal(200, whole.Count(s => s.LadderStage == "prospect" && s.Facts.Orders == 0));
    }
}
