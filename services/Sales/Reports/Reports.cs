using Crm.Sales.Opportunities;
using Dapper;
using Npgsql;

namespace Crm.Sales.Reports;

public sealed record ForecastCell(string OwnerId, DateTime Month, int Opportunities, decimal Amount, decimal Weighted);

public sealed record ForecastBucketRow(string Period, string OwnerId, int Opportunities, decimal Amount, decimal Weighted);

public sealed record ForecastResult(IReadOnlyList<ForecastBucketRow> Months, IReadOnlyList<ForecastBucketRow> Quarters, IReadOnlyList<ForecastBucketRow> Owners, decimal TotalWeighted);

public sealed record ConversionRow(string From, string To, int Reached, int Advanced);

public sealed record StageTotalRow(string Stage, int Probability, int Opportunities, decimal Amount, decimal Weighted);

public sealed record PipelineReportResult(int Won, int Lost, decimal? AverageCycleDays, IReadOnlyList<ConversionRow> Conversions, IReadOnlyList<StageTotalRow> OpenPipeline);

/// <summary>Forecast and pipeline reports: aggregates in SQL over the caller's scope, stage probabilities from the configured pipeline.</summary>
public sealed class SalesReports(NpgsqlDataSource dataSource, Pipeline pipeline)
{
    private object Args(Scope scope, string? ownerId, object? more = null)
    {
        var args = new DynamicParameters(more);
        args.Add("scopeSubject", scope.Subject);
        args.Add("scopeTeam", scope.Team);
        args.Add("ownerId", ownerId);
        args.Add("codes", pipeline.Stages.Select(s => s.Code).ToArray());
        args.Add("probs", pipeline.Stages.Select(s => s.Probability).ToArray());
        args.Add("ords", pipeline.Stages.Select(s => s.Order).ToArray());
        args.Add("open", pipeline.Open.Select(s => s.Code).ToArray());
        return args;
    }

    /// <summary>
    /// Weighted pipeline of the open opportunities, each amount × its stage's probability rounded to the fen, then summed.
    /// <paramref name="totalsOnly"/>: grouped by month alone in SQL, so the answer holds only the all-owners rows.
    /// </summary>
    public async Task<ForecastResult> ForecastAsync(Scope scope, string? ownerId, DateOnly? from, DateOnly? to, bool totalsOnly, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        var cells = (await connection.QueryAsync<ForecastCell>(new CommandDefinition($"""
            SELECT CASE WHEN @totalsOnly THEN '' ELSE o.owner_id END AS owner_id, date_trunc('month', o.expected_close_date::timestamp) AS month, count(*)::int AS opportunities,
                   sum(o.amount) AS amount, sum(round(o.amount * s.probability / 100.0, 2)) AS weighted
            FROM opportunities o JOIN unnest(@codes::text[], @probs::int[]) AS s(code, probability) ON s.code = o.stage
            WHERE {scope.Sql("o.")} AND o.stage = ANY(@open) AND (@ownerId::text IS NULL OR o.owner_id = @ownerId)
              AND (@from::date IS NULL OR o.expected_close_date >= @from::date) AND (@to::date IS NULL OR o.expected_close_date <= @to::date)
            GROUP BY 1, 2 ORDER BY 2, 1
            """, Args(scope, ownerId, new { from = from?.ToDateTime(TimeOnly.MinValue), to = to?.ToDateTime(TimeOnly.MinValue), totalsOnly }),
            cancellationToken: ct))).ToList();
        return Forecast(cells, totalsOnly);
    }

    /// <summary>Months and quarters per owner (unless <paramref name="totalsOnly"/>) and for all owners (""), owners over all periods, the total.</summary>
    public static ForecastResult Forecast(IReadOnlyList<ForecastCell> cells, bool totalsOnly = false)
    {
        static List<ForecastBucketRow> Group(IEnumerable<ForecastCell> cells, Func<ForecastCell, string> period, bool perOwner) =>
            cells.GroupBy(c => (Period: period(c), Owner: perOwner ? c.OwnerId : ""))
                .Select(g => new ForecastBucketRow(g.Key.Period, g.Key.Owner, g.Sum(c => c.Opportunities), g.Sum(c => c.Amount), g.Sum(c => c.Weighted)))
                .ToList();
        static string Month(ForecastCell c) => $"{c.Month:yyyy-MM}";
        static string Quarter(ForecastCell c) => $"{c.Month.Year}-Q{(c.Month.Month - 1) / 3 + 1}";
        IEnumerable<ForecastBucketRow> PerOwner(Func<ForecastCell, string> period) => totalsOnly ? [] : Group(cells, period, perOwner: true);
        IEnumerable<ForecastBucketRow> Both(Func<ForecastCell, string> period) =>
            Group(cells, period, perOwner: false).Concat(PerOwner(period))
                .OrderBy(b => b.Period, StringComparer.Ordinal).ThenBy(b => b.OwnerId, StringComparer.Ordinal);
        var owners = Group(cells, _ => "", perOwner: false).Concat(PerOwner(_ => "").OrderBy(b => b.OwnerId, StringComparer.Ordinal)).ToList();
        return new ForecastResult(Both(Month).ToList(), Both(Quarter).ToList(), owners, cells.Sum(c => c.Weighted));
    }

    private sealed record OpenTotal(string Stage, int Opportunities, decimal Amount, decimal Weighted);
    private sealed record StageCount(string Stage, string? FurthestStage, int Opportunities, decimal? WonSeconds);

    /// <param name="fromRows">Count by grouping the opportunities themselves instead of reading pipeline_counts: the
    /// same answer, slower; what the summary is checked against.</param>
    public async Task<PipelineReportResult> PipelineAsync(Scope scope, string? ownerId, bool fromRows, CancellationToken ct)
    {
        // The two queries are independent: run on two connections at once, the report costs the longer one rather than both.
        var countsTask = StageCountsAsync(scope, ownerId, fromRows, ct);
        var openTask = OpenTotalsAsync(scope, ownerId, ct);
        await Task.WhenAll(countsTask, openTask);
        var counts = countsTask.Result;
        var open = openTask.Result;

        var won = counts.Where(c => c.Stage == Pipeline.Won).ToList();
        var wonCount = won.Sum(c => c.Opportunities);
        decimal? cycleDays = wonCount == 0 ? null
            : Math.Round(won.Sum(c => c.WonSeconds ?? 0) / wonCount / 86400m, 2, MidpointRounding.AwayFromZero);

        var ladder = pipeline.Ladder;
        int ReachedAtLeast(int i) => counts.Where(c => pipeline.Progress(c.FurthestStage) >= i).Sum(c => c.Opportunities);
        var conversions = Enumerable.Range(0, ladder.Count - 1)
            .Select(i => new ConversionRow(ladder[i].Code, ladder[i + 1].Code, ReachedAtLeast(i), ReachedAtLeast(i + 1))).ToList();

        var openPipeline = pipeline.Open.Select(s => open.TryGetValue(s.Code, out var t)
            ? new StageTotalRow(s.Code, s.Probability, t.Opportunities, t.Amount, t.Weighted)
            : new StageTotalRow(s.Code, s.Probability, 0, 0m, 0m)).ToList();
        return new PipelineReportResult(wonCount, counts.Where(c => c.Stage == Pipeline.Lost).Sum(c => c.Opportunities), cycleDays, conversions, openPipeline);
    }

    /// <summary>
    /// Per stage and furthest stage reached, the count and (won only) the summed time from created to won, over the
    /// caller's scope: from the pipeline_counts summary (a few rows per owner), or from the opportunities themselves.
    /// </summary>
    private async Task<List<StageCount>> StageCountsAsync(Scope scope, string? ownerId, bool fromRows, CancellationToken ct)
    {
        var sql = fromRows
            ? $"""
              SELECT stage, furthest_stage, count(*)::int AS opportunities, sum(extract(epoch FROM won_at - created_at)) AS won_seconds
              FROM opportunities WHERE {scope.Sql()} AND (@ownerId::text IS NULL OR owner_id = @ownerId)
              GROUP BY stage, furthest_stage
              """
            : $"""
              SELECT stage, nullif(furthest_stage, '') AS furthest_stage, sum(opportunities)::int AS opportunities, sum(won_seconds) AS won_seconds
              FROM pipeline_counts WHERE {scope.Sql()} AND (@ownerId::text IS NULL OR owner_id = @ownerId)
              GROUP BY 1, 2 HAVING sum(opportunities) > 0
              """;
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        return (await connection.QueryAsync<StageCount>(new CommandDefinition(sql, Args(scope, ownerId), cancellationToken: ct))).ToList();
    }

    private async Task<Dictionary<string, OpenTotal>> OpenTotalsAsync(Scope scope, string? ownerId, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        return (await connection.QueryAsync<OpenTotal>(new CommandDefinition($"""
            SELECT o.stage, count(*)::int AS opportunities, sum(o.amount) AS amount, sum(round(o.amount * s.probability / 100.0, 2)) AS weighted
            FROM opportunities o JOIN unnest(@codes::text[], @probs::int[]) AS s(code, probability) ON s.code = o.stage
            WHERE {scope.Sql("o.")} AND o.stage = ANY(@open) AND (@ownerId::text IS NULL OR o.owner_id = @ownerId)
            GROUP BY o.stage
            """, Args(scope, ownerId), cancellationToken: ct))).ToDictionary(t => t.Stage);
    }
}
