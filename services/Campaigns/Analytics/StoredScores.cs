using Dapper;
using Npgsql;

namespace Crm.Campaigns.Analytics;

/// <summary>
/// Reads of the stored scores of the latest recompute: one customer by key, a distribution as one GROUP BY, a bucket's
/// customers as a keyset page. Profile fields (tier, points, region, tags, consent) are the read model's current ones.
/// </summary>
public sealed class StoredScores(NpgsqlDataSource dataSource)
{
    /// <summary>The distributions over stored columns; the SQL fragments are fixed here, never built from input.</summary>
    public enum Column { RfmCell, RfmGroup, Quadrant, Decile, Ladder, Churn }

    private static string Sql(Column column) => column switch
    {
        Column.RfmCell => "s.rfm_cell",
        Column.RfmGroup => "s.rfm_group",
        Column.Quadrant => "s.quadrant",
        Column.Decile => "s.decile::text",
        Column.Ladder => "s.ladder_stage",
        _ => "s.churn",
    };

    /// <summary>Buyers only, except the ladder (where customers without orders are prospects).</summary>
    private static string Population(Column column) => column == Column.Ladder ? "true" : "s.orders > 0";

    public async Task<RecomputeRun?> LatestRunAsync(CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        var row = await connection.QuerySingleOrDefaultAsync<RunRow>(new CommandDefinition(
            "SELECT * FROM recompute_runs ORDER BY id DESC LIMIT 1", cancellationToken: ct));
        return row?.ToRun();
    }

    public async Task<RecomputeRun?> RunAsync(long id, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        var row = await connection.QuerySingleOrDefaultAsync<RunRow>(new CommandDefinition(
            "SELECT * FROM recompute_runs WHERE id = @id", new { id }, cancellationToken: ct));
        return row?.ToRun();
    }

    public async Task<CustomerScore?> GetAsync(Guid customerId, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        var row = await connection.QuerySingleOrDefaultAsync<ScoreRow>(new CommandDefinition(
            Select + " WHERE s.customer_id = @customerId", new { customerId }, cancellationToken: ct));
        return row?.ToScore();
    }

    public async Task<IReadOnlyList<Bucket>> DistributionAsync(Column column, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        var rows = await connection.QueryAsync<(string Key, long Count, decimal Revenue)>(new CommandDefinition($"""
            SELECT {Sql(column)} AS key, count(*) AS count, coalesce(sum(s.spend_12m), 0) AS revenue
            FROM customer_scores s WHERE {Population(column)} AND {Sql(column)} IS NOT NULL GROUP BY 1
            """, cancellationToken: ct, commandTimeout: 120));
        return rows.Select(r => new Bucket(r.Key, (int)r.Count, r.Revenue)).ToList();
    }

    /// <summary>The customers of one bucket after <paramref name="after"/>, by customer id.</summary>
    public async Task<IReadOnlyList<CustomerScore>> PageAsync(Column column, string bucket, Guid after, int limit, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        var rows = await connection.QueryAsync<ScoreRow>(new CommandDefinition($"""
            {Select} WHERE {Population(column)} AND {Sql(column)} = @bucket AND s.customer_id > @after ORDER BY s.customer_id LIMIT @limit
            """, new { bucket, after, limit }, cancellationToken: ct, commandTimeout: 120));
        return rows.Select(r => r.ToScore()).ToList();
    }

    private const string Select = """
        SELECT s.*, c.tier, c.points_balance, c.birthday_month, c.region, coalesce(c.tags, '{}') AS tags,
               coalesce(c.marketing_consent, false) AS marketing_consent
        FROM customer_scores s LEFT JOIN customers c ON c.customer_id = s.customer_id
        """;

    private sealed class RunRow
    {
        public long Id { get; init; }
        public DateTime AsOf { get; init; }
        public int HorizonDays { get; init; }
        public long? ModelFitId { get; init; }
        public int Customers { get; init; }
        public DateTime StartedAt { get; init; }
        public DateTime FinishedAt { get; init; }
        public int? FitSample { get; init; }
        public RecomputeRun ToRun() => new(Id, AsOf, HorizonDays, ModelFitId, Customers, StartedAt, FinishedAt, FitSample);
    }

    private sealed class ScoreRow
    {
        public Guid CustomerId { get; init; }
        public long RunId { get; init; }
        public int Orders { get; init; }
        public decimal NetSpend { get; init; }
        public DateTime? FirstOrderAt { get; init; }
        public DateTime? LastOrderAt { get; init; }
        public int? DaysSinceLastOrder { get; init; }
        public int Orders12m { get; init; }
        public decimal Spend12m { get; init; }
        public int Orders24m { get; init; }
        public decimal Spend24m { get; init; }
        public short R { get; init; }
        public short F { get; init; }
        public short M { get; init; }
        public string RfmCell { get; init; } = "";
        public string RfmGroup { get; init; } = "";
        public double? PActive { get; init; }
        public double? ExpectedPurchases { get; init; }
        public decimal? ExpectedOrderValue { get; init; }
        public decimal? Clv { get; init; }
        public string? Quadrant { get; init; }
        public short? Decile { get; init; }
        public string LadderStage { get; init; } = "";
        public string? Churn { get; init; }
        public string ChurnBasis { get; init; } = "";
        public string? Tier { get; init; }
        public long? PointsBalance { get; init; }
        public short? BirthdayMonth { get; init; }
        public string? Region { get; init; }
        public string[] Tags { get; init; } = [];
        public bool MarketingConsent { get; init; }

        public CustomerScore ToScore()
        {
            var facts = new CustomerFacts(CustomerId, Orders, NetSpend, FirstOrderAt, LastOrderAt, 0, Orders12m, Spend12m, Orders24m, Spend24m,
                Tier, PointsBalance, BirthdayMonth, Region, Tags, MarketingConsent);
            return new CustomerScore(facts, R, F, M, RfmCell, RfmGroup, PActive ?? 0, ExpectedPurchases ?? 0, ExpectedOrderValue ?? 0, Clv ?? 0,
                Quadrant switch { "vip" => QuadrantKind.Vip, "growable" => QuadrantKind.Growable, "maintain" => QuadrantKind.Maintain,
                    "abandon" => QuadrantKind.Abandon, _ => QuadrantKind.Unspecified },
                Decile ?? 0, LadderStage,
                Churn switch { "low" => ChurnLevel.Low, "medium" => ChurnLevel.Medium, "high" => ChurnLevel.High, _ => ChurnLevel.Unspecified },
                ChurnBasis, DaysSinceLastOrder ?? 0, PActive is not null) { RunId = RunId };
        }
    }
}
