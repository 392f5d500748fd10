using Crm.Campaigns;
using Crm.Campaigns.Analytics;

namespace Crm.IntegrationTests.Campaigns;

/// <summary>
/// The population-wide values the recompute works out beside the model fit (Engine.Rank): deciles by current spend with
/// ties ranked by the smaller id, the current-value split (median over buyers) and the usual interval (median of the repeat
/// buyers' mean intervals), pinned on a hand-computed fixture.
/// </summary>
public class DecileRankTests
{
    private static readonly DateTime AsOf = new(2026, 11, 26, 4, 0, 0, DateTimeKind.Utc);

    private static CustomerFacts Buyer(string id, int orders, int spanDays, decimal current) =>
        new(Guid.Parse(id), orders, current + 100, AsOf.AddDays(-60 - spanDays), AsOf.AddDays(-60), 50, current > 0 ? 1 : 0, current, orders, current + 100);

    [Fact]
    public void Deciles_rank_ties_by_id_and_the_medians_match_the_hand_computed_values()
    {
        var options = new CampaignsOptions();
        options.ApplyDefaults();
        var engine = new Engine(options, TimeZoneInfo.FindSystemTimeZoneById(options.TimeZone));
        var population = new List<CustomerFacts>
        {
            Buyer("00000000-0000-0000-0000-00000000000b", 1, 0, 500m),     // B: ties with A, larger id
            Buyer("00000000-0000-0000-0000-00000000000a", 2, 30, 500.00m), // A: interval 30
            Buyer("00000000-0000-0000-0000-00000000000c", 5, 40, 300m),    // C: interval 10
            Buyer("00000000-0000-0000-0000-00000000000d", 2, 9, 0m),       // D: no current spend, interval 9
            Buyer("00000000-0000-0000-0000-00000000000e", 3, 20, 1_000m),  // E: interval 10
            new(Guid.Parse("00000000-0000-0000-0000-00000000000f"), 0, 0, null, null, 0, 0, 0, 0, 0), // F: no orders
        };

        var ranks = engine.Rank(population);

        // Four ranked (E, A, B, C): index i of 4 → i * 10 / 4 + 1 = 1, 3, 6, 8.
        Assert.Equal([6, 3, 8, 0, 1, 0], ranks.Decile);
        Assert.Equal(500m, ranks.CurrentSplit);          // buyers' current spend 0, 300, 500, 500, 1000
        Assert.Equal(10.0, ranks.PopulationInterval);    // 9, 10, 10, 30 → (10 + 10) / 2
        // Scoring with the ranks worked out beforehand is scoring without them.
        Assert.Equal(engine.Score(population, AsOf, null, 365), engine.Score(population, AsOf, null, 365, ranks: ranks));
        Assert.Equal([6, 3, 8, 0, 1, 0], engine.Score(population, AsOf, null, 365).Select(s => s.Decile));
    }
}
