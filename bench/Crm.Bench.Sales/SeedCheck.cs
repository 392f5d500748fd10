using Crm.Sales.Opportunities;
using Crm.Sales.V1;

namespace Crm.Bench.Sales;

/// <summary>
/// The seeded rows read back through the service as real data: one opportunity and its history, and one owner's
/// won/lost counts, stage conversions (from the history rows) and weighted forecast, against what the generator made. A mismatch stops the run.
/// </summary>
public static class SeedCheck
{
    public static async Task<string> RunAsync(SalesService.SalesServiceClient client, IReadOnlyList<SeedOpportunity> seed, Pipeline pipeline, CancellationToken ct)
    {
        var sample = seed[seed.Count / 2];
        var got = await client.GetOpportunityAsync(new GetOpportunityRequest { OpportunityId = sample.Id.ToString() }, cancellationToken: ct);
        Expect("GetOpportunity", $"{sample.Stage} {sample.Amount:0.00} {sample.OwnerId} v{sample.History.Count}",
            $"{got.Stage} {got.Amount.Amount} {got.OwnerId} v{got.Version}");
        var history = await client.ListStageHistoryAsync(new ListStageHistoryRequest { OpportunityId = sample.Id.ToString(), PageSize = 100 }, cancellationToken: ct);
        Expect("ListStageHistory", string.Join(">", sample.History.Select(h => h.To)), string.Join(">", history.Changes.Select(c => c.ToStage)));

        var owner = seed[0].OwnerId;
        var mine = seed.Where(o => o.OwnerId == owner).ToList();
        var pipelineReport = await client.GetPipelineReportAsync(new GetPipelineReportRequest { OwnerId = owner }, cancellationToken: ct);
        Expect("GetPipelineReport won/lost", $"{mine.Count(o => o.Stage == Pipeline.Won)}/{mine.Count(o => o.Stage == Pipeline.Lost)}",
            $"{pipelineReport.Won}/{pipelineReport.Lost}");
        // Conversions from the seeded history rows (the furthest non-lost stage of each), against the report's furthest_stage counts.
        var furthest = mine.Select(o => o.History.Max(h => pipeline.Progress(h.To))).ToList();
        var ladder = pipeline.Ladder;
        Expect("GetPipelineReport conversions",
            string.Join(" ", Enumerable.Range(0, ladder.Count - 1).Select(i => $"{furthest.Count(f => f >= i)}/{furthest.Count(f => f >= i + 1)}")),
            string.Join(" ", pipelineReport.Conversions.Select(c => $"{c.Reached}/{c.Advanced}")));
        var forecast = await client.GetForecastAsync(new GetForecastRequest { OwnerId = owner }, cancellationToken: ct);
        var weighted = mine.Where(o => !o.Closed).Sum(o => Pipeline.Weighted(o.Amount, pipeline.Get(o.Stage).Probability));
        Expect("GetForecast total", $"{weighted:0.00}", forecast.TotalWeighted.Amount);
        return $"read back through the RPCs: opportunity {sample.Id} ({got.Stage}, {history.Changes.Count} stage changes); " +
               $"{owner}: {pipelineReport.Won} won, {pipelineReport.Lost} lost, weighted pipeline {forecast.TotalWeighted.Amount} as seeded";
    }

    private static void Expect(string what, string expected, string actual)
    {
        if (expected != actual) throw new InvalidOperationException($"Seed check failed: {what} returned '{actual}', seeded '{expected}'.");
    }
}
