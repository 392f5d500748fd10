using Crm.Contracts;
using Crm.Messaging;
using Crm.ServiceDefaults.Data;
using Crm.ServiceDefaults.Errors;
using Dapper;
using Npgsql;

namespace Crm.Sales.Activities;

public static class ActivityKinds
{
    public const string Call = "call", Meeting = "meeting", Visit = "visit", Note = "note", Task = "task";
}

public sealed class ActivityRow
{
    public Guid Id { get; init; }
    public long Seq { get; init; }
    public string Kind { get; init; } = "";
    public string Subject { get; init; } = "";
    public string Body { get; init; } = "";
    public Guid? LeadId { get; init; }
    public Guid? OpportunityId { get; init; }
    public Guid? CustomerId { get; init; }
    public DateTime? DueAt { get; init; }
    public DateTime? DoneAt { get; init; }
    public string OwnerId { get; init; } = "";
    public string? OwnerTeam { get; init; }
    public DateTime? RemindedAt { get; init; }
    public DateTime CreatedAt { get; init; }
}

public sealed record NewActivity(
    string Kind, string Subject, string Body, Guid? LeadId, Guid? OpportunityId, Guid? CustomerId, DateTime? DueAt,
    string OwnerId, string? OwnerTeam, string? RequestId);

/// <summary>Activities (the communication log and tasks), the agenda, keyword search and due reminders.</summary>
public sealed class ActivityRepository(NpgsqlDataSource dataSource, Outbox outbox, TimeProvider clock, ILogger<ActivityRepository> logger)
{
    private const string Columns = """
        id, seq, kind, subject, body, lead_id, opportunity_id, customer_id, due_at, done_at, owner_id, owner_team, reminded_at, created_at
        """;

    public async Task<(ActivityRow Activity, bool Created)> CreateAsync(NewActivity a, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        if (a.RequestId is not null && await connection.QuerySingleOrDefaultAsync<ActivityRow>(new CommandDefinition(
                $"SELECT {Columns} FROM activities WHERE request_id = @RequestId", new { a.RequestId }, tx, cancellationToken: ct)) is { } earlier)
            return (earlier, false);
        var row = await connection.QuerySingleAsync<ActivityRow>(new CommandDefinition($"""
            INSERT INTO activities (id, kind, subject, body, search_key, lead_id, opportunity_id, customer_id, due_at, owner_id, owner_team, request_id, created_at)
            VALUES (@id, @Kind, @Subject, @Body, @key, @LeadId, @OpportunityId, @CustomerId, @DueAt, @OwnerId, @OwnerTeam, @RequestId, @now)
            RETURNING {Columns}
            """, new
            {
                id = Guid.CreateVersion7(), a.Kind, a.Subject, a.Body, key = SearchKey.Encode(a.Subject + "\n" + a.Body), a.LeadId, a.OpportunityId,
                a.CustomerId, a.DueAt, a.OwnerId, a.OwnerTeam, a.RequestId, now = clock.UtcNowForDb(),
            }, tx, cancellationToken: ct));
        await Crm.ServiceDefaults.Security.Audit.Audit.RecordAsync(tx, row.Id.ToString(), ct);
        await tx.CommitAsync(ct);
        return (row, true);
    }

    public async Task<ActivityRow?> GetAsync(Guid id, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        return await connection.QuerySingleOrDefaultAsync<ActivityRow>(new CommandDefinition(
            $"SELECT {Columns} FROM activities WHERE id = @id", new { id }, cancellationToken: ct));
    }

    public async Task<ActivityRow> CompleteAsync(Guid id, Action<ActivityRow> authorize, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var row = await connection.QuerySingleOrDefaultAsync<ActivityRow>(new CommandDefinition(
            $"SELECT {Columns} FROM activities WHERE id = @id FOR UPDATE", new { id }, tx, cancellationToken: ct)) ?? throw new NotFoundException("activity", id.ToString());
        authorize(row);
        if (row.DoneAt is not null) return row;
        row = await connection.QuerySingleAsync<ActivityRow>(new CommandDefinition(
            $"UPDATE activities SET done_at = @now WHERE id = @id RETURNING {Columns}", new { id, now = clock.UtcNowForDb() }, tx, cancellationToken: ct));
        await Crm.ServiceDefaults.Security.Audit.Audit.RecordAsync(tx, id.ToString(), ct);
        await tx.CommitAsync(ct);
        return row;
    }

    /// <summary>One owner's activities due in [from, to), by due time.</summary>
    public async Task<IReadOnlyList<ActivityRow>> AgendaAsync(string ownerId, DateTime from, DateTime to, (DateTime DueAt, Guid Id)? after, int limit, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        return (await connection.QueryAsync<ActivityRow>(new CommandDefinition($"""
            SELECT {Columns} FROM activities
            WHERE owner_id = @ownerId AND due_at >= @from AND due_at < @to
              AND (@afterAt::timestamptz IS NULL OR (due_at, id) > (@afterAt, @afterId))
            ORDER BY due_at, id LIMIT @limit
            """, new { ownerId, from, to, afterAt = after?.DueAt, afterId = after?.Id, limit }, cancellationToken: ct))).ToList();
    }

    /// <summary>Activities whose subject or body contains <paramref name="query"/>, newest first, within the caller's scope.</summary>
    public async Task<IReadOnlyList<ActivityRow>> SearchAsync(Scope scope, string query, Guid? customerId, string? ownerId, long? beforeSeq, int limit, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        // The key has no '%', '_' or '\', so the pattern needs no escaping.
        var pattern = "%" + SearchKey.Encode(query) + "%";
        return (await connection.QueryAsync<ActivityRow>(new CommandDefinition($"""
            SELECT {Columns} FROM activities
            WHERE search_key LIKE @pattern AND {scope.Sql()}
              AND (@customerId::uuid IS NULL OR customer_id = @customerId) AND (@ownerId::text IS NULL OR owner_id = @ownerId)
              AND (@before::bigint IS NULL OR seq < @before)
            ORDER BY seq DESC LIMIT @limit
            """, new { pattern, scopeSubject = scope.Subject, scopeTeam = scope.Team, customerId, ownerId, before = beforeSeq, limit },
            cancellationToken: ct))).ToList();
    }

    /// <summary>
    /// Publishes TaskDue for every open activity whose due time has come by the injected clock, once each: reminded_at
    /// is set in the same transaction as the outbox row, and rows are claimed with SKIP LOCKED so two instances never
    /// remind the same activity.
    /// </summary>
    /// <returns>How many reminders were published.</returns>
    public async Task<int> RemindDueAsync(CancellationToken ct)
    {
        var now = clock.UtcNowForDb();
        var total = 0;
        while (true)
        {
            await using var connection = await dataSource.OpenConnectionAsync(ct);
            await using var tx = await connection.BeginTransactionAsync(ct);
            var due = (await connection.QueryAsync<ActivityRow>(new CommandDefinition($"""
                UPDATE activities SET reminded_at = @now
                WHERE id IN (SELECT id FROM activities WHERE reminded_at IS NULL AND done_at IS NULL AND due_at <= @now
                             ORDER BY due_at LIMIT 200 FOR UPDATE SKIP LOCKED)
                RETURNING {Columns}
                """, new { now }, tx, cancellationToken: ct))).ToList();
            foreach (var a in due)
                await outbox.AddAsync(tx, new TaskDue(a.Id, a.Kind, a.Subject, a.OwnerId, a.LeadId, a.OpportunityId, a.CustomerId,
                    new DateTimeOffset(a.DueAt!.Value, TimeSpan.Zero)), ct);
            await tx.CommitAsync(ct);
            if (due.Count == 0) break;
            total += due.Count;
            outbox.Wake();
        }
        if (total > 0) logger.LogInformation("Published {Count} TaskDue reminders due by {Now:u}", total, now);
        return total;
    }
}

/// <summary>Runs <see cref="ActivityRepository.RemindDueAsync"/> every Sales:ReminderPollInterval (real time; "due" is by the injected clock).</summary>
public sealed class ReminderScheduler(ActivityRepository activities, Microsoft.Extensions.Options.IOptions<SalesOptions> options, ILogger<ReminderScheduler> logger)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.ReminderPollInterval);
        do
        {
            try
            {
                await activities.RemindDueAsync(stoppingToken);
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                logger.LogWarning(ex, "Reminder round failed; retrying at the next poll");
            }
        } while (await timer.WaitForNextTickAsync(stoppingToken));
    }
}
