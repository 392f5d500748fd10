using Dapper;
using Npgsql;

namespace Crm.Sales.Opportunities;

/// <summary>
/// The pipeline_counts summary (migration 0004): per owner, team, stage and furthest stage, the number of opportunities
/// and the summed seconds from created to won. Every write that changes one of those (create, move, close, reopen)
/// appends <see cref="Sql"/> to its own statement, so the summary changes in the same transaction and round trip.
/// Rows are per owner, so two owners' moves never wait for each other; the two rows of one move are locked in key
/// order, so two moves of one owner in opposite directions cannot deadlock.
/// </summary>
public static class PipelineCounts
{
    /// <summary>
    /// Takes the opportunity out of (@fromStage, @fromFurthest) unless @fromStage is NULL (a new one) and adds it to
    /// (@toStage, @toFurthest); parameters also @owner, @team, @createdAt, @fromWonAt, @toWonAt.
    /// </summary>
    public const string Sql = """
        INSERT INTO pipeline_counts AS p (owner_id, owner_team, stage, furthest_stage, opportunities, won_seconds)
        SELECT @owner, coalesce(@team, ''), d.stage, coalesce(d.furthest, ''), sum(d.n), coalesce(sum(d.n * extract(epoch FROM d.won_at - @createdAt)), 0)
        FROM (VALUES (@fromStage::text, @fromFurthest::text, -1, @fromWonAt::timestamptz),
                     (@toStage::text, @toFurthest::text, 1, @toWonAt::timestamptz)) AS d(stage, furthest, n, won_at)
        WHERE d.stage IS NOT NULL
        GROUP BY d.stage, d.furthest ORDER BY d.stage, d.furthest
        ON CONFLICT (owner_id, owner_team, stage, furthest_stage) DO UPDATE
            SET opportunities = p.opportunities + excluded.opportunities, won_seconds = p.won_seconds + excluded.won_seconds
        """;

    /// <summary>The parameters of <see cref="Sql"/> for a change from <paramref name="before"/> (null: created) to <paramref name="after"/>.</summary>
    public static DynamicParameters Change(OpportunityRow? before, OpportunityRow after)
    {
        var args = new DynamicParameters();
        args.Add("owner", after.OwnerId);
        args.Add("team", after.OwnerTeam);
        args.Add("createdAt", after.CreatedAt);
        args.Add("fromStage", before?.Stage);
        args.Add("fromFurthest", before?.FurthestStage);
        args.Add("fromWonAt", before?.WonAt);
        args.Add("toStage", after.Stage);
        args.Add("toFurthest", after.FurthestStage);
        args.Add("toWonAt", after.WonAt);
        return args;
    }

    /// <summary>
    /// <see cref="Sql"/> as a command of an <see cref="NpgsqlBatch"/>, for a move of one opportunity of
    /// <paramref name="owner"/> from <paramref name="from"/> to <paramref name="to"/> (stage, furthest stage, won at).
    /// </summary>
    public static NpgsqlBatchCommand Command(string owner, string? team, DateTime createdAt,
        (string Stage, string? Furthest, DateTime? WonAt) from, (string Stage, string? Furthest, DateTime? WonAt) to)
    {
        var command = new NpgsqlBatchCommand(Sql);
        command.Parameters.Add(new NpgsqlParameter<string>("owner", owner));
        command.Parameters.Add(new NpgsqlParameter("team", NpgsqlTypes.NpgsqlDbType.Text) { Value = (object?)team ?? DBNull.Value });
        command.Parameters.Add(new NpgsqlParameter<DateTime>("createdAt", createdAt));
        command.Parameters.Add(new NpgsqlParameter("fromStage", NpgsqlTypes.NpgsqlDbType.Text) { Value = from.Stage });
        command.Parameters.Add(new NpgsqlParameter("fromFurthest", NpgsqlTypes.NpgsqlDbType.Text) { Value = (object?)from.Furthest ?? DBNull.Value });
        command.Parameters.Add(new NpgsqlParameter("fromWonAt", NpgsqlTypes.NpgsqlDbType.TimestampTz) { Value = (object?)from.WonAt ?? DBNull.Value });
        command.Parameters.Add(new NpgsqlParameter("toStage", NpgsqlTypes.NpgsqlDbType.Text) { Value = to.Stage });
        command.Parameters.Add(new NpgsqlParameter("toFurthest", NpgsqlTypes.NpgsqlDbType.Text) { Value = (object?)to.Furthest ?? DBNull.Value });
        command.Parameters.Add(new NpgsqlParameter("toWonAt", NpgsqlTypes.NpgsqlDbType.TimestampTz) { Value = (object?)to.WonAt ?? DBNull.Value });
        return command;
    }

    /// <summary>Recomputes the whole summary from the opportunities (after a bulk load that bypassed the service).</summary>
    public static async Task RebuildAsync(NpgsqlConnection connection, CancellationToken ct)
    {
        await connection.ExecuteAsync(new CommandDefinition("""
            TRUNCATE pipeline_counts;
            INSERT INTO pipeline_counts (owner_id, owner_team, stage, furthest_stage, opportunities, won_seconds)
            SELECT owner_id, coalesce(owner_team, ''), stage, coalesce(furthest_stage, ''), count(*),
                   coalesce(sum(extract(epoch FROM won_at - created_at)), 0)
            FROM opportunities GROUP BY 1, 2, 3, 4;
            """, cancellationToken: ct));
    }
}
