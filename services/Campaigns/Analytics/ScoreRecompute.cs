using Crm.ServiceDefaults.Copy;
using Dapper;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;

namespace Crm.Campaigns.Analytics;

public sealed record RecomputeRun(long Id, DateTime AsOf, int HorizonDays, long? ModelFitId, int Customers, DateTime StartedAt, DateTime FinishedAt,
    int? FitSample);

public enum RecomputeState { Running, Finished, Failed }

/// <summary>A recompute as its caller sees it: <see cref="Run"/> is set once it has finished, <see cref="Error"/> if it failed.</summary>
public sealed record RecomputeStatus(long Id, RecomputeState State, DateTime StartedAt, int HorizonDays, RecomputeRun? Run, string? Error);

/// <summary>
/// The full recompute of the stored scores: every customer's facts (orders net of refunds,
/// windows, tier) into compact records (summed from the monthly roll-up where it is filled, <see cref="MonthlyFacts"/>), the
/// models are fitted on a random sample of buyers if asked (or if there is no
/// fit yet), <see cref="Engine"/> scores the whole population as of now in parallel chunks, and the rows are written by binary
/// COPY on several connections into a staging table that then replaces the table in one short transaction
/// (<see cref="StagedScores"/>: readers see the old run until the commit and then the new one).
/// Memory: the facts and the models' values per customer while it runs (each score is worked out as COPY writes it), none after.
/// One run at a time per instance, in the background: <see cref="StartAsync"/> answers at once, <see cref="GetAsync"/> polls.
/// </summary>
public sealed class ScoreRecompute(NpgsqlDataSource dataSource, AnalyticsQueries analytics, StoredScores stored, IOptions<CampaignsOptions> options,
    TimeProvider clock, IHostApplicationLifetime lifetime, ILogger<ScoreRecompute> logger)
{
    private const int Remembered = 100;
    private readonly SemaphoreSlim _starting = new(1, 1);
    private readonly Lock _lock = new();
    private readonly Dictionary<long, RecomputeStatus> _recent = [];
    private RecomputeStatus? _current;
    private Task<RecomputeRun> _task = Task.FromResult<RecomputeRun>(null!);

    /// <summary>Starts a recompute in the background and returns it (RUNNING), or returns the one already running.</summary>
    public async Task<RecomputeStatus> StartAsync(bool refitModels, CancellationToken ct) => (await StartOrJoinAsync(refitModels, ct)).Status;

    /// <summary>A run this instance knows (running, failed or finished), else a finished run from the stored runs; null if none has the id.</summary>
    public async Task<RecomputeStatus?> GetAsync(long id, CancellationToken ct)
    {
        lock (_lock)
            if (_recent.TryGetValue(id, out var known)) return known;
        return await stored.RunAsync(id, ct) is { } run ? Finished(run) : null;
    }

    /// <summary>Runs a recompute that starts after the one running, if any, and waits for it (the schedule; throws if it fails).</summary>
    public async Task<RecomputeRun> RunAfterOthersAsync(bool refitModels, CancellationToken ct)
    {
        while (true)
        {
            var (_, task, started) = await StartOrJoinAsync(refitModels, ct);
            if (started) return await task.WaitAsync(ct);
            try { await task.WaitAsync(ct); }
            catch (Exception) when (!ct.IsCancellationRequested) { } // someone else's run failed: ours comes next
        }
    }

    private async Task<(RecomputeStatus Status, Task<RecomputeRun> Task, bool Started)> StartOrJoinAsync(bool refitModels, CancellationToken ct)
    {
        await _starting.WaitAsync(ct);
        try
        {
            lock (_lock)
                if (_current is { State: RecomputeState.Running } running) return (running, _task, false);
            // The id is taken now so that the caller can poll it; the rows carry it and the run's row is inserted with the swap.
            long id;
            await using (var connection = await dataSource.OpenConnectionAsync(ct))
                id = await connection.ExecuteScalarAsync<long>(new CommandDefinition(
                    "SELECT nextval(pg_get_serial_sequence('recompute_runs', 'id'))", cancellationToken: ct));
            var status = new RecomputeStatus(id, RecomputeState.Running, AnalyticsQueries.Microseconds(clock.GetUtcNow().UtcDateTime),
                options.Value.DefaultHorizonDays, null, null);
            lock (_lock)
            {
                Track(status);
                _task = Task.Run(() => RunTrackedAsync(status, refitModels, lifetime.ApplicationStopping), CancellationToken.None);
                return (status, _task, true);
            }
        }
        finally { _starting.Release(); }
    }

    private async Task<RecomputeRun> RunTrackedAsync(RecomputeStatus status, bool refitModels, CancellationToken ct)
    {
        try
        {
            var run = await RunAsync(status.Id, status.StartedAt, refitModels, ct);
            lock (_lock) Track(Finished(run));
            return run;
        }
        catch (Exception e)
        {
            var error = ct.IsCancellationRequested ? "The service stopped during the recompute." : e.Message;
            logger.LogError(e, "Recompute {Run} failed after {Seconds:0.0} s; the previous run's scores stay in use", status.Id,
                (clock.GetUtcNow().UtcDateTime - status.StartedAt).TotalSeconds);
            lock (_lock) Track(status with { State = RecomputeState.Failed, Error = error });
            throw;
        }
        finally
        {
            // The run's few hundred MB of facts are garbage now, but the GC would keep the heap it grew to (and pay for scanning
            // it) until memory pressure says otherwise: one compacting collection gives it back to the OS at once.
            GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        }
    }

    private void Track(RecomputeStatus status)
    {
        _current = status;
        _recent[status.Id] = status;
        if (_recent.Count > Remembered) _recent.Remove(_recent.Keys.Min());
    }

    private static RecomputeStatus Finished(RecomputeRun run) => new(run.Id, RecomputeState.Finished, run.StartedAt, run.HorizonDays, run, null);

    private async Task<RecomputeRun> RunAsync(long runId, DateTime started, bool refitModels, CancellationToken ct)
    {
        var asOf = started;
        var engine = analytics.Engine;
        var o = options.Value;
        var phases = new RecomputePhases(logger, runId);
        var population = await LoadAsync(engine, asOf, ct);
        phases.Done("read", $"{population.Count} customers");

        // The deciles and medians need no model: they are worked out on another thread while the fit runs on this one.
        var ranking = Task.Run(() =>
        {
            var watch = System.Diagnostics.Stopwatch.StartNew();
            var ranks = engine.Rank(population);
            return (ranks, watch.Elapsed.TotalSeconds);
        }, ct);
        var fit = refitModels ? null : await analytics.FitByIdAsync(null, ct);
        int? fitSample = null;
        if (fit is null)
        {
            var sample = Sample(population, o.Recompute.FitSampleSize);
            if (Engine.Fit(sample, asOf, AnalyticsQueries.Microseconds(clock.GetUtcNow().UtcDateTime)) is { } fitted)
            {
                fit = (await analytics.SaveFitAsync(fitted, ct), fitted);
                fitSample = sample.Count;
            }
        }
        phases.Done("fit", fitSample is { } s ? $"models fitted on {s} buyers" : $"latest fit {fit?.Id} reused");
        var (ranks, rankSeconds) = await ranking;
        phases.Record("deciles and medians", rankSeconds, "beside the fit");
        phases.Done("waiting for the deciles");

        var horizon = o.DefaultHorizonDays;
        var parallelism = o.Recompute.EffectiveParallelism;
        var scores = engine.ScoreAsRead(population, asOf, fit?.Models, horizon, parallelism, o.Recompute.ChunkSize, ranks, phase => phases.Done(phase));

        await using var staged = await StagedScores.StageAsync(dataSource, runId, scores, parallelism, WriteAsync, phases, ct);
        var finished = AnalyticsQueries.Microseconds(clock.GetUtcNow().UtcDateTime);
        await staged.SwapInAsync(new { id = runId, asOf, horizon, fitId = fit?.Id, customers = scores.Count, started, finished, fitSample }, ct);
        phases.Done("swap");
        logger.LogInformation("Recompute {Run}: {Customers} customers scored as of {AsOf:O} in {Seconds:0.0} s (model fit {Fit}{Sample}); {Phases}", runId,
            scores.Count, asOf, (finished - started).TotalSeconds, fit?.Id, fitSample is { } n ? $", fitted now on {n} buyers" : "", phases.Summary);
        // The run is complete here: its scores are live.
        return new RecomputeRun(runId, asOf, horizon, fit?.Id, scores.Count, started, finished, fitSample);
    }

    /// <summary>
    /// Every customer known to the read model with their orders aggregated as of <paramref name="asOf"/>, from the monthly
    /// roll-up where it is filled, else in one hash aggregate over the orders: the first order's net value is the net of the
    /// smallest (paid_at, net) pair, so of two first orders at the same microsecond the smaller counts as first (the
    /// on-request path takes the smaller id).
    /// </summary>
    private async Task<List<CustomerFacts>> LoadAsync(Engine engine, DateTime asOf, CancellationToken ct)
    {
        var o = options.Value;
        bool fromMonths;
        // The roll-up is complete once filled in the brand's zone (the fill and the state row commit together; the read model's
        // writes keep it after). Never filled, or cut in another zone: every order is aggregated instead.
        await using (var connection = await dataSource.OpenConnectionAsync(ct))
            fromMonths = await Reports.SalesRollup.FilledZoneAsync(connection, ct) == o.TimeZone;
        logger.LogInformation("Recompute reads its facts from {Source}", fromMonths ? "the monthly roll-up and the orders of three months" : "every order");
        return await ReadFactsAsync(dataSource, engine, o, asOf, fromMonths, o.Recompute.EffectiveParallelism, ct);
    }

    /// <summary>
    /// Every customer's facts as of <paramref name="asOf"/>, from the monthly roll-up (<see cref="MonthlyFacts"/>, on
    /// <paramref name="parts"/> connections) or from every order: the same rows.
    /// </summary>
    internal static async Task<List<CustomerFacts>> ReadFactsAsync(NpgsqlDataSource dataSource, Engine engine, CampaignsOptions o,
        DateTime asOf, bool fromMonths, int parts, CancellationToken ct)
    {
        var currentFrom = engine.MonthsBefore(asOf, o.CurrentValueMonths);
        var windowFrom = engine.MonthsBefore(asOf, o.RfmWindowMonths);
        (object, NpgsqlDbType)[] parameters =
            [(asOf, NpgsqlDbType.TimestampTz), (currentFrom, NpgsqlDbType.TimestampTz), (windowFrom, NpgsqlDbType.TimestampTz)];
        if (fromMonths) return await MonthlyFacts.ReadAsync(dataSource, [.. parameters, .. MonthlyFacts.MonthParameters(engine, asOf, currentFrom, windowFrom)], parts, ct);

        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        // A million customers' groups fit a hash table in memory instead of spilling to disk (Postgres' memory, for this query only).
        // No JIT: compiling the aggregate's expressions (inlined and optimised, the query's cost being high) took seconds of the
        // read at 2,000,000 orders and saves less than that on a hash aggregate.
        await connection.ExecuteAsync(new CommandDefinition("SET LOCAL work_mem = '256MB'; SET LOCAL jit = off", transaction: tx, cancellationToken: ct));
        var tiers = new Dictionary<string, string>();
        var facts = new List<CustomerFacts>();
        await using var command = new NpgsqlCommand(FromOrdersSql, connection, tx) { CommandTimeout = 1800 };
        foreach (var (value, type) in parameters) command.Parameters.Add(new NpgsqlParameter { Value = value, NpgsqlDbType = type });
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            string? tier = null;
            if (!reader.IsDBNull(10))
            {
                var t = reader.GetString(10);
                if (!tiers.TryGetValue(t, out tier)) tiers[t] = tier = t;
            }
            facts.Add(new CustomerFacts(reader.GetGuid(0), reader.GetInt32(1), reader.GetDecimal(2),
                reader.IsDBNull(3) ? null : reader.GetDateTime(3), reader.IsDBNull(4) ? null : reader.GetDateTime(4), reader.GetDecimal(5),
                reader.GetInt32(6), reader.GetDecimal(7), reader.GetInt32(8), reader.GetDecimal(9), tier));
        }
        return facts;
    }

    /// <summary>The facts aggregated from every order ($1 as-of, $2 and $3 the current-value and RFM windows' starts).</summary>
    internal const string FromOrdersSql = """
            WITH agg AS (
                SELECT customer_id, count(*)::int AS orders, sum(amount_paid - amount_refunded) AS net_spend,
                       min(paid_at) AS first_order_at, max(paid_at) AS last_order_at,
                       (min(ARRAY[extract(epoch FROM paid_at)::numeric, amount_paid - amount_refunded]))[2] AS first_order_net,
                       (count(*) FILTER (WHERE paid_at > $2))::int AS orders_current,
                       coalesce(sum(amount_paid - amount_refunded) FILTER (WHERE paid_at > $2), 0) AS spend_current,
                       (count(*) FILTER (WHERE paid_at > $3))::int AS orders_window,
                       coalesce(sum(amount_paid - amount_refunded) FILTER (WHERE paid_at > $3), 0) AS spend_window
                FROM orders
                WHERE paid_at IS NOT NULL AND paid_at <= $1 AND amount_paid > amount_refunded
                GROUP BY customer_id
            )
            SELECT coalesce(c.customer_id, a.customer_id), coalesce(a.orders, 0), coalesce(a.net_spend, 0), a.first_order_at, a.last_order_at,
                   coalesce(a.first_order_net, 0), coalesce(a.orders_current, 0), coalesce(a.spend_current, 0), coalesce(a.orders_window, 0),
                   coalesce(a.spend_window, 0), c.tier
            FROM customers c FULL JOIN agg a ON a.customer_id = c.customer_id
            """;

    /// <summary>At most about <paramref name="size"/> buyers, drawn by a stable hash of the customer id (the same customers every run).</summary>
    internal static List<CustomerFacts> Sample(List<CustomerFacts> population, int size)
    {
        var buyers = population.Where(c => c.Orders > 0).ToList();
        if (buyers.Count <= size) return buyers;
        var threshold = (ulong)(ulong.MaxValue * ((double)size / buyers.Count));
        return buyers.Where(c => Hash(c.CustomerId) < threshold).ToList();
    }

    private static ulong Hash(Guid id)
    {
        Span<byte> bytes = stackalloc byte[16];
        id.TryWriteBytes(bytes);
        // The last eight bytes are random in v4 and v7 ids alike; splitmix64's finaliser spreads them evenly anyway.
        var z = BitConverter.ToUInt64(bytes[8..]) + 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    private const short ScoreColumns = 25;

    private static Task WriteAsync(NpgsqlConnection connection, string table, long runId, IEnumerable<CustomerScore> scores, CancellationToken ct) =>
        BinaryCopyRows.CopyAsync(connection, $"""
            COPY {table} (customer_id, run_id, orders, net_spend, first_order_at, last_order_at, days_since_last_order,
                orders_12m, spend_12m, orders_24m, spend_24m, r, f, m, rfm_cell, rfm_group, p_active, expected_purchases,
                expected_order_value, clv, quadrant, decile, ladder_stage, churn, churn_basis) FROM STDIN (FORMAT BINARY)
            """, scores, (rows, s) => Encode(rows, runId, s), ct);

    /// <summary>One customer_scores row in the column order of the COPY above.</summary>
    internal static void Encode(BinaryCopyRows rows, long runId, CustomerScore s)
    {
        var c = s.Facts;
        var buyer = c.Orders > 0;
        rows.StartRow(ScoreColumns);
        rows.Uuid(c.CustomerId);
        rows.Int64(runId);
        rows.Int32(c.Orders);
        rows.Numeric(c.NetSpend);
        if (c.FirstOrderAt is { } first) rows.TimestampTz(first); else rows.Null();
        if (c.LastOrderAt is { } last) rows.TimestampTz(last); else rows.Null();
        if (buyer) rows.Int32(s.DaysSinceLastOrder); else rows.Null();
        rows.Int32(c.OrdersCurrent);
        rows.Numeric(c.SpendCurrent);
        rows.Int32(c.OrdersWindow);
        rows.Numeric(c.SpendWindow);
        rows.Int16((short)s.R);
        rows.Int16((short)s.F);
        rows.Int16((short)s.M);
        rows.Text(s.Cell);
        rows.Text(s.Group);
        if (s.ModelUsed)
        {
            rows.Float8(s.PActive);
            rows.Float8(s.ExpectedPurchases);
            rows.Numeric(s.ExpectedOrderValue);
            rows.Numeric(s.Clv);
        }
        else
            for (var i = 0; i < 4; i++) rows.Null();
        if (Key(s.Quadrant) is { } quadrant) rows.Text(quadrant); else rows.Null();
        if (s.Decile > 0) rows.Int16((short)s.Decile); else rows.Null();
        rows.Text(s.LadderStage);
        if (Key(s.Churn) is { } churn) rows.Text(churn); else rows.Null();
        rows.Text(s.ChurnBasis);
    }

    public static string? Key(QuadrantKind q) => q switch
    {
        QuadrantKind.Vip => "vip", QuadrantKind.Growable => "growable", QuadrantKind.Maintain => "maintain", QuadrantKind.Abandon => "abandon", _ => null,
    };

    public static string? Key(ChurnLevel c) => c switch { ChurnLevel.Low => "low", ChurnLevel.Medium => "medium", ChurnLevel.High => "high", _ => null };
}
