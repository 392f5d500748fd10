using Crm.Contracts;
using Crm.Messaging;
using Crm.ServiceDefaults.Data;
using Crm.ServiceDefaults.Errors;
using Dapper;
using Npgsql;
using NpgsqlTypes;

namespace Crm.Sales.Opportunities;

public sealed class OpportunityRow
{
    public Guid Id { get; init; }
    public long Seq { get; init; }
    public string Title { get; init; } = "";
    public Guid CustomerId { get; init; }
    public Guid? LeadId { get; init; }
    public string? ProductInterest { get; init; }
    public decimal Amount { get; init; }
    public DateOnly ExpectedCloseDate { get; init; }
    public string Stage { get; init; } = "";
    public string? FurthestStage { get; init; }
    public string OwnerId { get; init; } = "";
    public string? OwnerTeam { get; init; }
    public string? CloseReason { get; init; }
    public DateTime? ClosedAt { get; init; }
    public DateTime? WonAt { get; init; }
    public decimal Paid { get; init; }
    public string OrderStatus { get; init; } = "none";
    public Guid? OrderId { get; init; }
    public long Version { get; init; }
    public DateTime CreatedAt { get; init; }
    public DateTime UpdatedAt { get; init; }
}

public sealed record NewOpportunity(
    Guid CustomerId, Guid? LeadId, string Title, string? ProductInterest, decimal Amount, DateOnly ExpectedCloseDate, string Stage,
    string OwnerId, string? OwnerTeam, string? RequestId);

public sealed record StageChangeRow(long Id, string? FromStage, string ToStage, string? Reason, string ChangedBy, DateTime ChangedAt);

public sealed record OpportunityFilter(string? OwnerId, string? Stage, Guid? CustomerId, string? OrderStatus);

/// <summary>Opportunities and their stage history; won/lost events go out through the outbox with the change.</summary>
public sealed class OpportunityRepository(NpgsqlDataSource dataSource, Outbox outbox, Pipeline pipeline, TimeProvider clock)
{
    internal const string Columns = """
        id, seq, title, customer_id, lead_id, product_interest, amount, expected_close_date, stage, furthest_stage, owner_id, owner_team,
        close_reason, closed_at, won_at, paid, order_status, order_id, version, created_at, updated_at
        """;

    public async Task<(OpportunityRow Opportunity, bool Created)> CreateAsync(NewOpportunity o, string changedBy, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        if (o.RequestId is not null && await FindAsync(connection, tx, "request_id = @RequestId", new { o.RequestId }, ct) is { } earlier)
            return (earlier, false);
        var row = await InsertAsync(connection, tx, o, pipeline.Furthest(null, pipeline.Get(o.Stage)), changedBy, clock.UtcNowForDb(), ct);
        await Crm.ServiceDefaults.Security.Audit.Audit.RecordAsync(tx, row.Id.ToString(), ct);
        await tx.CommitAsync(ct);
        return (row, true);
    }

    /// <summary>Inserts the opportunity and its first history entry in the caller's transaction.</summary>
    internal static async Task<OpportunityRow> InsertAsync(NpgsqlConnection connection, NpgsqlTransaction tx, NewOpportunity o, string? furthest, string changedBy,
        DateTime now, CancellationToken ct)
    {
        var id = Guid.CreateVersion7();
        var row = await connection.QuerySingleAsync<OpportunityRow>(new CommandDefinition($"""
            INSERT INTO opportunities (id, title, customer_id, lead_id, product_interest, amount, expected_close_date, stage, furthest_stage, owner_id,
                                       owner_team, request_id, created_at, updated_at)
            VALUES (@id, @Title, @CustomerId, @LeadId, @ProductInterest, @Amount, @close::date, @Stage, @furthest, @OwnerId, @OwnerTeam, @RequestId, @now, @now)
            RETURNING {Columns}
            """, new
            {
                id, o.Title, o.CustomerId, o.LeadId, o.ProductInterest, o.Amount, close = o.ExpectedCloseDate.ToDateTime(TimeOnly.MinValue),
                o.Stage, furthest, o.OwnerId, o.OwnerTeam, o.RequestId, now,
            }, tx, cancellationToken: ct));
        var args = PipelineCounts.Change(null, row);
        args.AddDynamicParams(new { id, o.Stage, changedBy, now });
        await connection.ExecuteAsync(new CommandDefinition($"""
            INSERT INTO stage_history (opportunity_id, from_stage, to_stage, reason, changed_by, changed_at) VALUES (@id, NULL, @Stage, 'opened', @changedBy, @now);
            {PipelineCounts.Sql}
            """, args, tx, cancellationToken: ct));
        return row;
    }

    public async Task<OpportunityRow?> GetAsync(Guid id, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        return await FindAsync(connection, null, "id = @id", new { id }, ct);
    }

    public async Task<IReadOnlyList<OpportunityRow>> ListAsync(Scope scope, OpportunityFilter f, long? beforeSeq, int limit, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        return (await connection.QueryAsync<OpportunityRow>(new CommandDefinition($"""
            SELECT {Columns} FROM opportunities
            WHERE {scope.Sql()} AND (@ownerId::text IS NULL OR owner_id = @ownerId) AND (@stage::text IS NULL OR stage = @stage)
              AND (@customerId::uuid IS NULL OR customer_id = @customerId) AND (@orderStatus::text IS NULL OR order_status = @orderStatus)
              AND (@before::bigint IS NULL OR seq < @before)
            ORDER BY seq DESC LIMIT @limit
            """, new { scopeSubject = scope.Subject, scopeTeam = scope.Team, ownerId = f.OwnerId, stage = f.Stage, customerId = f.CustomerId, orderStatus = f.OrderStatus, before = beforeSeq, limit },
            cancellationToken: ct))).ToList();
    }

    /// <summary>Moves to <paramref name="target"/> (a reopen when <paramref name="reopen"/>), with history, event and audit.</summary>
    public async Task<OpportunityRow> MoveAsync(Guid id, long expectedVersion, Stage target, string? reason, bool reopen, DateOnly? newCloseDate,
        Action<OpportunityRow> authorize, string changedBy, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var current = await FindAsync(connection, tx, "id = @id FOR UPDATE", new { id }, ct) ?? throw new NotFoundException("opportunity", id.ToString());
        authorize(current);
        if (expectedVersion > 0 && current.Version != expectedVersion)
            throw new ConcurrencyConflictException("opportunity", id.ToString(), expectedVersion, current.Version);
        var from = pipeline.Find(current.Stage) ?? throw new PreconditionFailedException("STAGE_NOT_CONFIGURED", $"opportunities/{id}",
            $"Opportunity {id} is in '{current.Stage}', which the pipeline no longer has.");
        if (reopen) StageRules.CheckReopen(id, from, target, current.Paid);
        else StageRules.CheckMove(id, from, target);
        var now = clock.UtcNowForDb();
        if (reopen && newCloseDate is null && current.ExpectedCloseDate < DateOnly.FromDateTime(now))
            throw new ValidationException("expected_close_date", "is required: the old expected close date has passed.");

        // One round trip for the move itself: the update, its history entry, the pipeline summary and the audit row.
        // Everything the summary needs after the move is known before it (owner, team and created_at do not change).
        var furthest = pipeline.Furthest(current.FurthestStage, target);
        DateTime? wonAt = target.IsWon ? now : null;
        await using var batch = new NpgsqlBatch(connection, tx);
        var update = new NpgsqlBatchCommand($"""
            UPDATE opportunities SET stage = @stage, furthest_stage = @furthest,
                close_reason = CASE WHEN @closing THEN @reason END,
                closed_at = CASE WHEN @closing THEN @now END,
                won_at = @wonAt,
                expected_close_date = coalesce(@close::date, expected_close_date),
                version = version + 1, updated_at = @now
            WHERE id = @id RETURNING {Columns}
            """);
        Add(update, "id", id, NpgsqlDbType.Uuid);
        Add(update, "stage", target.Code, NpgsqlDbType.Text);
        Add(update, "furthest", furthest, NpgsqlDbType.Text);
        Add(update, "closing", target.IsClosed, NpgsqlDbType.Boolean);
        Add(update, "reason", reason, NpgsqlDbType.Text);
        Add(update, "now", now, NpgsqlDbType.TimestampTz);
        Add(update, "wonAt", wonAt, NpgsqlDbType.TimestampTz);
        Add(update, "close", newCloseDate, NpgsqlDbType.Date);
        batch.BatchCommands.Add(update);
        var history = new NpgsqlBatchCommand("""
            INSERT INTO stage_history (opportunity_id, from_stage, to_stage, reason, changed_by, changed_at) VALUES (@id, @from, @to, @reason, @changedBy, @now)
            """);
        Add(history, "id", id, NpgsqlDbType.Uuid);
        Add(history, "from", from.Code, NpgsqlDbType.Text);
        Add(history, "to", target.Code, NpgsqlDbType.Text);
        Add(history, "reason", reason, NpgsqlDbType.Text);
        Add(history, "changedBy", changedBy, NpgsqlDbType.Text);
        Add(history, "now", now, NpgsqlDbType.TimestampTz);
        batch.BatchCommands.Add(history);
        batch.BatchCommands.Add(PipelineCounts.Command(current.OwnerId, current.OwnerTeam, current.CreatedAt,
            (current.Stage, current.FurthestStage, current.WonAt), (target.Code, furthest, wonAt)));
        if (Crm.ServiceDefaults.Security.Audit.Audit.BatchCommand(id.ToString()) is { } audit) batch.BatchCommands.Add(audit);
        OpportunityRow row;
        await using (var reader = await batch.ExecuteReaderAsync(ct))
        {
            row = reader.Parse<OpportunityRow>().Single();
            while (await reader.NextResultAsync(ct)) { }
        }
        var at = new DateTimeOffset(now, TimeSpan.Zero);
        if (target.IsWon)
            await outbox.AddAsync(tx, new OpportunityWon(id, row.CustomerId, row.Amount, row.OwnerId, row.OwnerTeam, reason!, at), ct);
        else if (target.IsLost)
            await outbox.AddAsync(tx, new OpportunityLost(id, row.CustomerId, row.Amount, row.OwnerId, row.OwnerTeam, from.Code, reason!, at), ct);
        await tx.CommitAsync(ct);
        if (target.IsClosed) outbox.Wake();
        return row;
    }

    public async Task<IReadOnlyList<StageChangeRow>> HistoryAsync(Guid id, long afterId, int limit, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        return (await connection.QueryAsync<StageChangeRow>(new CommandDefinition("""
            SELECT id, from_stage, to_stage, reason, changed_by, changed_at FROM stage_history
            WHERE opportunity_id = @id AND id > @afterId ORDER BY id LIMIT @limit
            """, new { id, afterId, limit }, cancellationToken: ct))).ToList();
    }

    private static void Add(NpgsqlBatchCommand command, string name, object? value, NpgsqlDbType type) =>
        command.Parameters.Add(new NpgsqlParameter(name, type) { Value = value ?? DBNull.Value });

    internal static async Task<OpportunityRow?> FindAsync(NpgsqlConnection connection, NpgsqlTransaction? tx, string where, object args, CancellationToken ct) =>
        await connection.QuerySingleOrDefaultAsync<OpportunityRow>(new CommandDefinition($"SELECT {Columns} FROM opportunities WHERE {where}", args, tx, cancellationToken: ct));
}
