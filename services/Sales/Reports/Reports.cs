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

    /// <summary>Weighted pipeline of the open opportunities, each amount × its stage's probability rounded to the fen, then summed.</summary>
    public async Task<ForecastResult> ForecastAsync(Scope scope, string? ownerId, DateOnly? from, DateOnly? to, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        var cells = (await connection.QueryAsync<ForecastCell>(new CommandDefinition($"""
            SELECT o.owner_id, date_trunc('month', o.expected_close_date)::timestamp AS month, count(*)::int AS opportunities,
                   sum(o.amount) AS amount, sum(round(o.amount * s.probability / 100.0, 2)) AS weighted
            FROM opportunities o JOIN unnest(@codes::text[], @probs::int[]) AS s(code, probability) ON s.code = o.stage
            WHERE {scope.Sql("o.")} AND o.stage = ANY(@open) AND (@ownerId::text IS NULL OR o.owner_id = @ownerId)
              AND (@from::date IS NULL OR o.expected_close_date >= @from::date) AND (@to::date IS NULL OR o.expected_close_date <= @to::date)
            GROUP BY 1, 2 ORDER BY 2, 1
            """, Args(scope, ownerId, new { from = from?.ToDateTime(TimeOnly.MinValue), to = to?.ToDateTime(TimeOnly.MinValue) }),
            cancellationToken: ct))).ToList();
        return Forecast(cells);
    }

    /// <summary>Months and quarters per owner and for all owners (""), owners over all periods, the total.</summary>
    public static ForecastResult Forecast(IReadOnlyList<ForecastCell> cells)
    {
        static List<ForecastBucketRow> Group(IEnumerable<ForecastCell> cells, Func<ForecastCell, string> period, bool perOwner) =>
            cells.GroupBy(c => (Period: period(c), Owner: perOwner ? c.OwnerId : ""))
                .Select(g => new ForecastBucketRow(g.Key.Period, g.Key.Owner, g.Sum(c => c.Opportunities), g.Sum(c => c.Amount), g.Sum(c => c.Weighted)))
                .ToList();
        static string Month(ForecastCell c) => $"{c.Month:yyyy-MM}";
        static string Quarter(ForecastCell c) => $"{c.Month.Year}-Q{(c.Month.Month - 1) / 3 + 1}";
        static IEnumerable<ForecastBucketRow> Both(IEnumerable<ForecastCell> cells, Func<ForecastCell, string> period) =>
            Group(cells, period, perOwner: false).Concat(Group(cells, period, perOwner: true))
                .OrderBy(b => b.Period, StringComparer.Ordinal).ThenBy(b => b.OwnerId, StringComparer.Ordinal);
        var owners = Group(cells, _ => "", perOwner: false).Concat(Group(cells, _ => "", perOwner: true).OrderBy(b => b.OwnerId, StringComparer.Ordinal)).ToList();
        return new ForecastResult(Both(cells, Month).ToList(), Both(cells, Quarter).ToList(), owners, cells.Sum(c => c.Weighted));
    }

    private sealed record Closed(int Won, int Lost, decimal? AverageCycleDays);
    private sealed record Reach(int Ord, int Opportunities);

    public async Task<PipelineReportResult> PipelineAsync(Scope scope, string? ownerId, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        var closed = await connection.QuerySingleAsync<Closed>(new CommandDefinition($"""
            SELECT count(*) FILTER (WHERE stage = 'won')::int AS won, count(*) FILTER (WHERE stage = 'lost')::int AS lost,
                   round(avg(extract(epoch FROM won_at - created_at)) FILTER (WHERE stage = 'won') / 86400.0, 2) AS average_cycle_days
            FROM opportunities WHERE {scope.Sql()} AND (@ownerId::text IS NULL OR owner_id = @ownerId)
            """, Args(scope, ownerId), cancellationToken: ct));

        // The furthest stage each opportunity ever reached (lost does not count as progress; won is past every open stage).
        var reach = (await connection.QueryAsync<Reach>(new CommandDefinition($"""
            SELECT m AS ord, count(*)::int AS opportunities FROM (
                SELECT h.opportunity_id, max(s.ord) AS m
                FROM stage_history h JOIN opportunities o ON o.id = h.opportunity_id
                JOIN unnest(@codes::text[], @ords::int[]) AS s(code, ord) ON s.code = h.to_stage
                WHERE {scope.Sql("o.")} AND (@ownerId::text IS NULL OR o.owner_id = @ownerId) AND h.to_stage <> 'lost'
                GROUP BY h.opportunity_id) furthest
            GROUP BY m
            """, Args(scope, ownerId), cancellationToken: ct))).ToList();
        var ladder = pipeline.Open.Append(pipeline.Get(Pipeline.Won)).ToList();
        int ReachedAtLeast(int i) => reach.Where(r => ladder.FindIndex(s => s.Order == r.Ord) >= i).Sum(r => r.Opportunities);
        var conversions = Enumerable.Range(0, ladder.Count - 1)
            .Select(i => new ConversionRow(ladder[i].Code, ladder[i + 1].Code, ReachedAtLeast(i), ReachedAtLeast(i + 1))).ToList();

        var open = (await connection.QueryAsync<StageTotalRow>(new CommandDefinition($"""
            SELECT s.code AS stage, s.probability, count(o.id)::int AS opportunities, coalesce(sum(o.amount), 0) AS amount,
                   coalesce(sum(round(o.amount * s.probability / 100.0, 2)), 0) AS weighted
            FROM unnest(@codes::text[], @probs::int[], @ords::int[]) AS s(code, probability, ord)
            LEFT JOIN opportunities o ON o.stage = s.code AND {scope.Sql("o.")} AND (@ownerId::text IS NULL OR o.owner_id = @ownerId)
            WHERE s.code = ANY(@open)
            GROUP BY s.code, s.probability, s.ord ORDER BY s.ord
            """, Args(scope, ownerId), cancellationToken: ct))).ToList();
        return new PipelineReportResult(closed.Won, closed.Lost, closed.AverageCycleDays, conversions, open);
    }
}
