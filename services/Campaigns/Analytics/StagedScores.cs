using System.Text.RegularExpressions;
using Dapper;
using Npgsql;

namespace Crm.Campaigns.Analytics;

/// <summary>
/// A recompute's rows written beside the live table and swapped in. The rows go into <c>customer_scores_next</c> (same
/// columns, no indexes) by binary COPY on several connections at once, its indexes are built afterwards (faster than
/// keeping them up to date row by row, and in parallel), and one short transaction then drops the live table and renames
/// the staged one with its indexes to the live names, so readers see the old run until the commit and the new one after.
/// The indexes, primary key and foreign keys are copied from the live table's catalogue, so one a later migration adds is
/// kept. If another table's key or a view depends on customer_scores (it cannot be dropped), the swap copies the rows over
/// instead (TRUNCATE + INSERT … SELECT in the same transaction): slower, same result.
/// The table is never vacuumed for its inserts: a million fresh rows would otherwise have autovacuum scan every page and mark
/// it all-visible (dirtying it to be written again) within a minute of the swap, competing with the event consumers for the
/// disk and a core, for a table that is replaced whole by the next run and only ever read (the run ANALYZEs it itself; dead
/// rows, should there be any, are still vacuumed).
/// </summary>
public sealed partial class StagedScores : IAsyncDisposable
{
    private const string Live = "customer_scores";
    private const string Next = "customer_scores_next";

    // Holds the advisory lock (one recompute writes the staging table at a time, across instances) and runs the swap.
    private readonly NpgsqlConnection _connection;
    private readonly List<(string Name, string Definition, bool Primary)> _indexes;

    public long RunId { get; }
    private StagedScores(NpgsqlConnection connection, long runId, List<(string, string, bool)> indexes)
    {
        _connection = connection;
        RunId = runId;
        _indexes = indexes;
    }

    public delegate Task Writer(NpgsqlConnection connection, string table, long runId, IEnumerable<CustomerScore> scores, CancellationToken ct);

    /// <summary>Writes <paramref name="scores"/> of run <paramref name="runId"/> into the staging table in <paramref name="parallelism"/> parts and indexes it.</summary>
    public static async Task<StagedScores> StageAsync(NpgsqlDataSource dataSource, long runId, IReadOnlyList<CustomerScore> scores, int parallelism,
        Writer write, RecomputePhases phases, CancellationToken ct)
    {
        List<(string, string, bool)> indexes;
        var connection = await dataSource.OpenConnectionAsync(ct);
        try
        {
            await connection.ExecuteAsync(new CommandDefinition($"""
                SELECT pg_advisory_lock(hashtext('{Next}'));
                DROP TABLE IF EXISTS {Next};
                CREATE TABLE {Next} (LIKE {Live} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED)
                    WITH (autovacuum_vacuum_insert_threshold = -1);
                """, cancellationToken: ct));
            indexes = (await connection.QueryAsync<(string, string, bool)>(new CommandDefinition($"""
                SELECT i.relname, pg_get_indexdef(i.oid), x.indisprimary
                FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
                WHERE x.indrelid = '{Live}'::regclass ORDER BY x.indisprimary DESC, i.relname
                """, cancellationToken: ct))).ToList();
        }
        catch
        {
            await new StagedScores(connection, 0, []).DisposeAsync();
            throw;
        }
        phases.Done("staging table");
        var staged = new StagedScores(connection, runId, indexes);
        try
        {
            await staged.WriteAndIndexAsync(dataSource, scores, parallelism, write, phases, ct);
            return staged;
        }
        catch
        {
            await staged.DisposeAsync();
            throw;
        }
    }

    private async Task WriteAndIndexAsync(NpgsqlDataSource dataSource, IReadOnlyList<CustomerScore> scores, int parallelism, Writer write,
        RecomputePhases phases, CancellationToken ct)
    {
        var runId = RunId;

        parallelism = Math.Clamp(parallelism, 1, 8);
        var parts = Enumerable.Range(0, parallelism).Select(k => (From: (int)((long)scores.Count * k / parallelism), To: (int)((long)scores.Count * (k + 1) / parallelism)));
        await Task.WhenAll(parts.Select(async p =>
        {
            await using var connection = await dataSource.OpenConnectionAsync(ct);
            await write(connection, Next, runId, Range(scores, p.From, p.To), ct);
        }));

        phases.Done("copy", $"{scores.Count} rows scored and written on {parallelism} connections");
        // ANALYZE first: it takes longest (a sample of every column), and started last it ran alone at the end while the
        // other connection had finished the short index builds.
        var queue = new Queue<string>([$"ANALYZE {Next}", .. _indexes.Select((ix, k) => StagedDefinition(ix.Definition, k))]);
        var each = new List<string>(); // each statement's own time: they run side by side
        await Task.WhenAll(Enumerable.Range(0, Math.Min(parallelism, queue.Count)).Select(async _ =>
        {
            await using var connection = await dataSource.OpenConnectionAsync(ct);
            await connection.ExecuteAsync(new CommandDefinition("SET maintenance_work_mem = '256MB'", cancellationToken: ct));
            while (true)
            {
                string sql;
                lock (queue)
                {
                    if (queue.Count == 0) return;
                    sql = queue.Dequeue();
                }
                var watch = System.Diagnostics.Stopwatch.StartNew();
                await connection.ExecuteAsync(new CommandDefinition(sql, commandTimeout: 1800, cancellationToken: ct));
                lock (each) each.Add(FormattableString.Invariant($"{sql.Split(" ON ")[0]} {watch.Elapsed.TotalSeconds:0.00} s"));
            }
        }));
        phases.Done("indexes and ANALYZE", string.Join(", ", each));
    }

    /// <summary>Inserts the run's row and makes the staged rows the live ones, in one transaction.</summary>
    public async Task SwapInAsync(object run, CancellationToken ct)
    {
        var connection = _connection;
        await using var tx = await connection.BeginTransactionAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition($"LOCK TABLE {Live} IN ACCESS EXCLUSIVE MODE", transaction: tx, cancellationToken: ct));
        await connection.ExecuteAsync(new CommandDefinition("""
            INSERT INTO recompute_runs (id, as_of, horizon_days, model_fit_id, customers, started_at, finished_at, fit_sample)
            OVERRIDING SYSTEM VALUE VALUES (@id, @asOf, @horizon, @fitId, @customers, @started, @finished, @fitSample)
            """, run, tx, cancellationToken: ct));
        var dependents = await connection.ExecuteScalarAsync<long>(new CommandDefinition($"""
            SELECT (SELECT count(*) FROM pg_constraint WHERE confrelid = '{Live}'::regclass AND conrelid <> '{Live}'::regclass)
                 + (SELECT count(*) FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid WHERE d.refobjid = '{Live}'::regclass AND r.ev_class <> '{Live}'::regclass)
            """, transaction: tx, cancellationToken: ct));
        if (dependents > 0)
        {
            await connection.ExecuteAsync(new CommandDefinition($"TRUNCATE {Live}; INSERT INTO {Live} SELECT * FROM {Next}; DROP TABLE {Next}",
                transaction: tx, commandTimeout: 1800, cancellationToken: ct));
            await tx.CommitAsync(ct);
            return;
        }
        var foreignKeys = (await connection.QueryAsync<(string Name, string Definition)>(new CommandDefinition($"""
            SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = '{Live}'::regclass AND contype = 'f'
            """, transaction: tx, cancellationToken: ct))).ToList();
        var sql = new List<string>();
        for (var k = 0; k < _indexes.Count; k++)
            if (_indexes[k].Primary) sql.Add($"ALTER TABLE {Next} ADD PRIMARY KEY USING INDEX {StagedName(k)}");
        // The rows were just written with this run's id, which the row above now matches: no need to check 1 M rows under the lock.
        sql.AddRange(foreignKeys.Select(f => $"ALTER TABLE {Next} ADD CONSTRAINT {Quote(f.Name)} {f.Definition} NOT VALID"));
        sql.Add($"DROP TABLE {Live}");
        sql.Add($"ALTER TABLE {Next} RENAME TO {Live}");
        sql.AddRange(_indexes.Select((ix, k) => $"ALTER INDEX {StagedName(k)} RENAME TO {Quote(ix.Name)}"));
        await connection.ExecuteAsync(new CommandDefinition(string.Join(";\n", sql), transaction: tx, cancellationToken: ct));
        await tx.CommitAsync(ct);
    }

    /// <summary>Releases the advisory lock (a pooled connection would keep it until reused) and the connection.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            if (_connection.State == System.Data.ConnectionState.Open)
                await _connection.ExecuteAsync($"SELECT pg_advisory_unlock(hashtext('{Next}'))");
        }
        catch (NpgsqlException) { } // a broken connection has lost the lock anyway
        await _connection.DisposeAsync();
    }

    private static string StagedName(int k) => $"{Next}_ix{k}";

    /// <summary>The live index's definition on the staging table, under a staging name.</summary>
    private static string StagedDefinition(string definition, int k)
    {
        var m = IndexDefinition().Match(definition);
        if (!m.Success) throw new InvalidOperationException("Unexpected index definition on customer_scores: " + definition);
        return $"CREATE {m.Groups["unique"].Value}INDEX {StagedName(k)} ON {Next} {m.Groups["rest"].Value}";
    }

    [GeneratedRegex(@"^CREATE (?<unique>UNIQUE )?INDEX \S+ ON (ONLY )?\S+ (?<rest>USING .*)$", RegexOptions.Singleline)]
    private static partial Regex IndexDefinition();

    private static string Quote(string identifier) => "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    private static IEnumerable<CustomerScore> Range(IReadOnlyList<CustomerScore> scores, int from, int to)
    {
        for (var i = from; i < to; i++) yield return scores[i];
    }
}
