using Crm.Campaigns.V1;
using Crm.ServiceDefaults.Data;
using Crm.ServiceDefaults.Errors;
using Dapper;
using Google.Protobuf;
using Npgsql;

namespace Crm.Campaigns.Segments;

public sealed class SegmentRow
{
    public Guid SegmentId { get; init; }
    public string Name { get; init; } = "";
    public string Description { get; init; } = "";
    public string Rules { get; init; } = "{}";
    public long Version { get; init; }
    public DateTime CreatedAt { get; init; }
    public DateTime UpdatedAt { get; init; }

    public SegmentRule ParsedRules => JsonParser.Default.Parse<SegmentRule>(Rules);
}

public sealed class SnapshotRow
{
    public Guid SnapshotId { get; init; }
    public Guid SegmentId { get; init; }
    public long SegmentVersion { get; init; }
    public string Purpose { get; init; } = "";
    public long MemberCount { get; init; }
    public DateTime TakenAt { get; init; }
}

public sealed class MemberRow
{
    public Guid CustomerId { get; init; }
    public string? Tier { get; init; }
    public string? Region { get; init; }
    public string? City { get; init; }
    public long? PointsBalance { get; init; }
    public string? RfmCell { get; init; }
    public string? RfmGroup { get; init; }
    public string? Quadrant { get; init; }
    public bool MarketingConsent { get; init; }
}

/// <summary>Segments, their live evaluation and their frozen snapshots in campaignsdb. Rules are kept as protobuf JSON.</summary>
public sealed class SegmentStore(NpgsqlDataSource db, TimeProvider clock)
{
    private const string Columns = "segment_id, name, description, rules::text AS rules, version, created_at, updated_at";

    public static string ToJson(SegmentRule rule) => JsonFormatter.Default.Format(rule);

    public async Task<SegmentRow> CreateAsync(string name, string description, SegmentRule rules, string? idempotencyKey, string createdBy, CancellationToken ct)
    {
        if (idempotencyKey is not null && await FindByKeyAsync(idempotencyKey, ct) is { } earlier)
        {
            ServiceDefaults.Security.Audit.Audit.MarkReplayed();
            return earlier;
        }
        var now = clock.UtcNowForDb();
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var id = Guid.CreateVersion7();
        try
        {
            var inserted = await connection.ExecuteAsync(new CommandDefinition("""
                INSERT INTO segments (segment_id, name, description, rules, idempotency_key, created_by, created_at, updated_at)
                VALUES (@id, @name, @description, @rules::jsonb, @idempotencyKey, @createdBy, @now, @now)
                ON CONFLICT (idempotency_key) DO NOTHING
                """, new { id, name, description, rules = ToJson(rules), idempotencyKey, createdBy, now }, tx, cancellationToken: ct));
            if (inserted == 0)
            {
                await tx.RollbackAsync(ct);
                return (await FindByKeyAsync(idempotencyKey!, ct))!; // a concurrent retry won
            }
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation && e.ConstraintName == "segments_name_key")
        {
            throw new AlreadyExistsException("segment", name, "A segment with this name exists already.");
        }
        await ServiceDefaults.Security.Audit.Audit.RecordAsync(tx, id.ToString(), ct);
        await tx.CommitAsync(ct);
        return (await GetAsync(id, ct))!;
    }

    private async Task<SegmentRow?> FindByKeyAsync(string key, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        return await connection.QuerySingleOrDefaultAsync<SegmentRow>(new CommandDefinition(
            $"SELECT {Columns} FROM segments WHERE idempotency_key = @key", new { key }, cancellationToken: ct));
    }

    public async Task<SegmentRow?> GetAsync(Guid id, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        return await connection.QuerySingleOrDefaultAsync<SegmentRow>(new CommandDefinition(
            $"SELECT {Columns} FROM segments WHERE segment_id = @id", new { id }, cancellationToken: ct));
    }

    public async Task<SegmentRow> RequireAsync(Guid id, CancellationToken ct) =>
        await GetAsync(id, ct) ?? throw new NotFoundException("segment", id.ToString());

    /// <summary>By name (byte order), then id; <paramref name="after"/> null for the first page.</summary>
    public async Task<IReadOnlyList<SegmentRow>> ListAsync((string Name, Guid Id)? after, int limit, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        return (await connection.QueryAsync<SegmentRow>(new CommandDefinition($"""
            SELECT {Columns} FROM segments
            WHERE @hasAfter = false OR (name, segment_id) > (@afterName, @afterId)
            ORDER BY name, segment_id LIMIT @limit
            """, new { hasAfter = after is not null, afterName = after?.Name ?? "", afterId = after?.Id ?? Guid.Empty, limit }, cancellationToken: ct))).ToList();
    }

    public async Task<SegmentRow> UpdateAsync(Guid id, long version, string name, string description, SegmentRule rules, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        int updated;
        try
        {
            updated = await connection.ExecuteAsync(new CommandDefinition("""
                UPDATE segments SET name = @name, description = @description, rules = @rules::jsonb, version = version + 1, updated_at = @now
                WHERE segment_id = @id AND version = @version
                """, new { id, version, name, description, rules = ToJson(rules), now = clock.UtcNowForDb() }, tx, cancellationToken: ct));
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation && e.ConstraintName == "segments_name_key")
        {
            throw new AlreadyExistsException("segment", name, "Another segment has this name.");
        }
        if (updated == 0)
        {
            var current = await connection.ExecuteScalarAsync<long?>(new CommandDefinition(
                "SELECT version FROM segments WHERE segment_id = @id", new { id }, tx, cancellationToken: ct));
            if (current is null) throw new NotFoundException("segment", id.ToString());
            throw new ConcurrencyConflictException("segment", id.ToString(), version, current);
        }
        await ServiceDefaults.Security.Audit.Audit.RecordAsync(tx, id.ToString(), ct);
        await tx.CommitAsync(ct);
        return (await GetAsync(id, ct))!;
    }

    public async Task DeleteAsync(Guid id, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var deleted = await connection.ExecuteAsync(new CommandDefinition(
            "DELETE FROM segments WHERE segment_id = @id", new { id }, tx, cancellationToken: ct));
        if (deleted == 0) throw new NotFoundException("segment", id.ToString());
        await ServiceDefaults.Security.Audit.Audit.RecordAsync(tx, id.ToString(), ct);
        await tx.CommitAsync(ct);
    }

    // ---- evaluation ----

    public async Task<long> CountAsync(SegmentFilter filter, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        return await connection.ExecuteScalarAsync<long>(new CommandDefinition(
            $"SELECT count(*) FROM {filter.From} WHERE {filter.Where}", filter.Parameters, commandTimeout: 60, cancellationToken: ct));
    }

    public async Task<IReadOnlyList<MemberRow>> PreviewAsync(SegmentFilter filter, Guid after, int limit, CancellationToken ct)
    {
        var parameters = new DynamicParameters(filter.Parameters);
        parameters.Add("after", after);
        parameters.Add("limit", limit);
        var scores = filter.NeedsScores ? filter.From : filter.From + " LEFT JOIN customer_scores s ON s.customer_id = c.customer_id";
        await using var connection = await db.OpenConnectionAsync(ct);
        return (await connection.QueryAsync<MemberRow>(new CommandDefinition($"""
            SELECT c.customer_id, c.tier, c.region, c.city, c.points_balance, s.rfm_cell, s.rfm_group, s.quadrant, c.marketing_consent
            FROM {scores} WHERE c.customer_id > @after AND ({filter.Where})
            ORDER BY c.customer_id LIMIT @limit
            """, parameters, commandTimeout: 60, cancellationToken: ct))).ToList();
    }

    public async Task<bool> ContainsAsync(SegmentFilter filter, Guid customerId, CancellationToken ct)
    {
        var parameters = new DynamicParameters(filter.Parameters);
        parameters.Add("customerId", customerId);
        await using var connection = await db.OpenConnectionAsync(ct);
        return await connection.ExecuteScalarAsync<bool>(new CommandDefinition(
            $"SELECT EXISTS (SELECT 1 FROM {filter.From} WHERE c.customer_id = @customerId AND ({filter.Where}))", parameters, cancellationToken: ct));
    }

    /// <summary>Which of <paramref name="customerIds"/> the filter selects now, in one statement on the caller's transaction.</summary>
    public static async Task<HashSet<Guid>> MembersAmongAsync(NpgsqlTransaction tx, SegmentFilter filter, Guid[] customerIds, CancellationToken ct)
    {
        var parameters = new DynamicParameters(filter.Parameters);
        parameters.Add("customerIds", customerIds);
        return (await tx.Connection!.QueryAsync<Guid>(new CommandDefinition(
            $"SELECT c.customer_id FROM {filter.From} WHERE c.customer_id = ANY (@customerIds) AND ({filter.Where})", parameters, tx, cancellationToken: ct))).ToHashSet();
    }

    public static async Task<SegmentRow?> GetAsync(NpgsqlTransaction tx, Guid id, CancellationToken ct) =>
        await tx.Connection!.QuerySingleOrDefaultAsync<SegmentRow>(new CommandDefinition(
            $"SELECT {Columns} FROM segments WHERE segment_id = @id", new { id }, tx, cancellationToken: ct));

    /// <summary>Freezes the members in one statement; a retry with the same key returns the first snapshot.</summary>
    public async Task<SnapshotRow> SnapshotAsync(SegmentRow segment, SegmentFilter filter, string purpose, string? idempotencyKey, CancellationToken ct)
    {
        if (idempotencyKey is not null && await FindSnapshotByKeyAsync(idempotencyKey, ct) is { } earlier)
        {
            if (earlier.SegmentId != segment.SegmentId)
                throw new AlreadyExistsException("snapshot", earlier.SnapshotId.ToString(), "This idempotency_key was used for a snapshot of another segment.");
            ServiceDefaults.Security.Audit.Audit.MarkReplayed();
            return earlier;
        }
        var id = Guid.CreateVersion7();
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var inserted = await connection.ExecuteAsync(new CommandDefinition("""
            INSERT INTO segment_snapshots (snapshot_id, segment_id, segment_version, rules, purpose, member_count, idempotency_key, taken_at)
            VALUES (@id, @SegmentId, @Version, @Rules::jsonb, @purpose, 0, @idempotencyKey, @now)
            ON CONFLICT (idempotency_key) DO NOTHING
            """, new { id, segment.SegmentId, segment.Version, segment.Rules, purpose, idempotencyKey, now = clock.UtcNowForDb() }, tx, cancellationToken: ct));
        if (inserted == 0)
        {
            await tx.RollbackAsync(ct);
            return (await FindSnapshotByKeyAsync(idempotencyKey!, ct))!; // a concurrent retry won
        }
        var parameters = new DynamicParameters(filter.Parameters);
        parameters.Add("snapshotId", id);
        var members = await connection.ExecuteAsync(new CommandDefinition($"""
            INSERT INTO segment_snapshot_members (snapshot_id, customer_id)
            SELECT @snapshotId, c.customer_id FROM {filter.From} WHERE {filter.Where}
            """, parameters, tx, commandTimeout: 120, cancellationToken: ct));
        await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE segment_snapshots SET member_count = @members WHERE snapshot_id = @id", new { id, members = (long)members }, tx, cancellationToken: ct));
        await ServiceDefaults.Security.Audit.Audit.RecordAsync(tx, id.ToString(), ct);
        await tx.CommitAsync(ct);
        return (await GetSnapshotAsync(id, ct))!;
    }

    private const string SnapshotColumns = "snapshot_id, segment_id, segment_version, purpose, member_count, taken_at";

    private async Task<SnapshotRow?> FindSnapshotByKeyAsync(string key, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        return await connection.QuerySingleOrDefaultAsync<SnapshotRow>(new CommandDefinition(
            $"SELECT {SnapshotColumns} FROM segment_snapshots WHERE idempotency_key = @key", new { key }, cancellationToken: ct));
    }

    public async Task<SnapshotRow?> GetSnapshotAsync(Guid id, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        return await connection.QuerySingleOrDefaultAsync<SnapshotRow>(new CommandDefinition(
            $"SELECT {SnapshotColumns} FROM segment_snapshots WHERE snapshot_id = @id", new { id }, cancellationToken: ct));
    }

    public async Task<IReadOnlyList<Guid>> SnapshotMembersAsync(Guid snapshotId, Guid after, int limit, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        return (await connection.QueryAsync<Guid>(new CommandDefinition("""
            SELECT customer_id FROM segment_snapshot_members WHERE snapshot_id = @snapshotId AND customer_id > @after
            ORDER BY customer_id LIMIT @limit
            """, new { snapshotId, after, limit }, cancellationToken: ct))).ToList();
    }
}
