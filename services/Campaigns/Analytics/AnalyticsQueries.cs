using Crm.Campaigns.Models;
using Crm.Campaigns.ReadModel;
using Dapper;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Crm.Campaigns.Analytics;

/// <summary>
/// Loads a population from the read model and scores it with <see cref="Engine"/>. Computed on request: the population's
/// aggregate is one indexed scan of the orders (the medians, deciles and model all need every customer anyway). At the
/// issue's benchmark scale only an explicit past as-of or a tagged population comes here: "as of now" reads come from the
/// stored scores (<see cref="StoredScores"/>, written by <see cref="ScoreRecompute"/>).
/// </summary>
public sealed class AnalyticsQueries(NpgsqlDataSource dataSource, ReadModelStore store, IOptions<CampaignsOptions> options, TimeProvider clock)
{
    public CampaignsOptions Options => options.Value;
    public TimeZoneInfo Zone { get; } = TimeZoneInfo.FindSystemTimeZoneById(options.Value.TimeZone);
    public Engine Engine => new(options.Value, Zone);

    public DateTime Now => clock.GetUtcNow().UtcDateTime;

    public async Task<(IReadOnlyList<CustomerScore> Scores, FittedModels? Models)> ScoreAsync(DateTime asOf, string? tag, int horizonDays, Guid? mustInclude,
        CancellationToken ct)
    {
        var engine = Engine;
        var population = await LoadAsync(engine, asOf, tag, null, ct);
        if (mustInclude is { } id && population.All(c => c.CustomerId != id))
            population = [.. population, .. await LoadAsync(engine, asOf, null, id, ct)];
        var models = await LatestModelsAsync(ct);
        return (engine.Score(population, asOf, models, horizonDays), models);
    }

    public Task<IReadOnlyList<CustomerFacts>> LoadAsync(Engine engine, DateTime asOf, string? tag, Guid? only, CancellationToken ct) =>
        store.LoadPopulationAsync(asOf, engine.MonthsBefore(asOf, Options.CurrentValueMonths), engine.MonthsBefore(asOf, Options.RfmWindowMonths), tag, only, ct);

    public Task<IReadOnlyList<decimal>> OrderValuesAsync(DateTime asOf, string? tag, CancellationToken ct) =>
        store.LoadOrderValuesAsync(Engine.MonthsBefore(asOf, Options.CurrentValueMonths), asOf, tag, ct);

    /// <summary>Fits both models over every customer's history as of <paramref name="asOf"/> and keeps the result; null when there is too little data.</summary>
    public async Task<FittedModels?> FitAsync(DateTime asOf, CancellationToken ct)
    {
        // Postgres keeps microseconds: round both instants now so the stored fit reads back exactly as returned.
        asOf = Microseconds(asOf);
        var population = await LoadAsync(Engine, asOf, null, null, ct);
        var fitted = Engine.Fit(population, asOf, Microseconds(Now));
        if (fitted is null) return null;
        await SaveFitAsync(fitted, ct);
        return fitted;
    }

    /// <summary>Keeps a fit as the latest; returns its id.</summary>
    public async Task<long> SaveFitAsync(FittedModels fitted, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        return await connection.ExecuteScalarAsync<long>(new CommandDefinition("""
            INSERT INTO model_fits (as_of, fitted_at, r, alpha_days, a, b, bgnbd_ll, bgnbd_customers, p, q, gamma, gg_ll, gg_customers)
            VALUES (@AsOf, @FittedAt, @R, @Alpha, @A, @B, @BgLl, @BgN, @P, @Q, @Gamma, @GgLl, @GgN)
            RETURNING id
            """, new
        {
            fitted.AsOf, fitted.FittedAt, fitted.BgNbd.R, fitted.BgNbd.Alpha, fitted.BgNbd.A, fitted.BgNbd.B, BgLl = fitted.BgNbdLogLikelihood,
            BgN = fitted.BgNbdCustomers, fitted.GammaGamma.P, fitted.GammaGamma.Q, fitted.GammaGamma.Gamma, GgLl = fitted.GammaGammaLogLikelihood,
            GgN = fitted.GammaGammaCustomers,
        }, cancellationToken: ct));
    }

    public async Task<FittedModels?> LatestModelsAsync(CancellationToken ct) => (await FitByIdAsync(null, ct))?.Models;

    /// <summary>A stored fit by id, or the latest when <paramref name="id"/> is null.</summary>
    public async Task<(long Id, FittedModels Models)?> FitByIdAsync(long? id, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        var row = await connection.QuerySingleOrDefaultAsync<FitRow>(new CommandDefinition(
            "SELECT * FROM model_fits WHERE @id::bigint IS NULL OR id = @id ORDER BY id DESC LIMIT 1", new { id }, cancellationToken: ct));
        return row is null ? null : (row.Id, new FittedModels(new BgNbd(row.R, row.AlphaDays, row.A, row.B), row.BgnbdLl, row.BgnbdCustomers,
            new GammaGamma(row.P, row.Q, row.Gamma), row.GgLl, row.GgCustomers, row.AsOf, row.FittedAt));
    }

    public static DateTime Microseconds(DateTime t) => new(t.Ticks - t.Ticks % 10, DateTimeKind.Utc);

    public Task<bool> IsKnownAsync(Guid customerId, CancellationToken ct) => store.IsKnownAsync(customerId, ct);

    private sealed class FitRow
    {
        public long Id { get; init; }
        public DateTime AsOf { get; init; }
        public DateTime FittedAt { get; init; }
        public double R { get; init; }
        public double AlphaDays { get; init; }
        public double A { get; init; }
        public double B { get; init; }
        public double BgnbdLl { get; init; }
        public int BgnbdCustomers { get; init; }
        public double P { get; init; }
        public double Q { get; init; }
        public double Gamma { get; init; }
        public double GgLl { get; init; }
        public int GgCustomers { get; init; }
    }
}
