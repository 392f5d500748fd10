using System.Text.Json;
using Crm.Contracts;
using Crm.Messaging;
using Crm.ServiceDefaults.Data;
using Crm.ServiceDefaults.Errors;
using Crm.ServiceDefaults.Security;
using Crm.Tickets.Sla;
using Dapper;
using Grpc.Core;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;

namespace Crm.Tickets.Domain;

public sealed record NewTicket(
    Guid CustomerId, int Type, int Channel, int Priority, string? OrderRef, string Subject, string Description,
    IReadOnlyList<string> Tags, IReadOnlyList<AttachmentRef> Attachments, string? Queue, string? IdempotencyKey);

/// <summary>
/// Tickets and their life: opening (with SLA targets from priority and tier), comments, the state machine, reopening,
/// assignment, surveys. Every change happens under the ticket's row lock, with its events in the same transaction.
/// </summary>
public sealed class TicketStore(NpgsqlDataSource db, Outbox outbox, TimeProvider clock, BusinessCalendar calendar, SlaPolicies policies,
    IOptions<TicketsOptions> options)
{
    internal static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    private static readonly HashSet<(int From, int To)> Moves =
    [
        (States.New, States.Acknowledged),
        (States.Acknowledged, States.InProgress),
        (States.InProgress, States.WaitingOnCustomer),
        (States.WaitingOnCustomer, States.InProgress),
        (States.InProgress, States.Resolved),
        (States.WaitingOnCustomer, States.Resolved),
        (States.Resolved, States.Closed),
    ];

    public static readonly string[] StateNames = ["", "new", "acknowledged", "in_progress", "waiting_on_customer", "resolved", "closed"];
    public static readonly string[] TypeNames = ["", "inquiry", "complaint", "return_exchange", "after_sales", "suggestion", "care_call"];
    public static readonly string[] ChannelNames = ["", "store", "phone", "online_chat", "app", "social"];

    // ---- opening ----

    /// <summary>Opens a ticket; a retry with the same idempotency key gets the ticket it opened.</summary>
    public async Task<TicketView> OpenAsync(NewTicket t, Caller by, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var row = await OpenInAsync(tx, t, by.Subject, ct);
        if (row is null)
        {
            await tx.RollbackAsync(ct);
            var existing = (await FindByKeyAsync(t.IdempotencyKey!, ct))!;
            if (existing.CustomerId != t.CustomerId)
                throw new AlreadyExistsException("ticket", existing.Id.ToString(), "This idempotency_key was used for another customer's ticket.");
            return await GetAsync(existing.Id, by, ct);
        }
        await tx.CommitAsync(ct);
        outbox.Wake();
        // Nothing to read back: a new ticket has no comments yet, and a complaint only its "receive" step.
        return new TicketView(row, [], row.Type == TicketTypes.Complaint
            ? [new ComplaintStepRow { Step = "receive", DoneBy = by.Subject, DoneAt = row.OpenedAt }]
            : []);
    }

    /// <summary>
    /// Writes the ticket, its search text, its two running SLA targets, a complaint's "receive" step, TicketOpened (outbox
    /// and change feed) and, within a gRPC call, the audit row, in one round trip. The customer's tier is read in the same
    /// statement, so the due times of every target the ticket's priority can get are computed before and the statement
    /// picks by tier; the event gets the tier there too.
    /// Nothing is written for a key that is taken (a retry; the caller rolls back) or a queue that does not exist.
    /// </summary>
    /// <returns>The new ticket, or null when its idempotency key is taken.</returns>
    internal async Task<TicketRow?> OpenInAsync(NpgsqlTransaction tx, NewTicket t, string openedBy, CancellationToken ct)
    {
        var now = clock.UtcNowForDb();
        var (tiers, choices) = policies.Choices(t.Priority);
        var frDue = choices.Select(c => calendar.Add(now, TimeSpan.FromMinutes(c.FirstResponseMinutes))).ToArray();
        var resDue = choices.Select(c => calendar.Add(now, TimeSpan.FromMinutes(c.ResolutionMinutes))).ToArray();
        var row = new TicketRow
        {
            Id = Guid.CreateVersion7(), CustomerId = t.CustomerId, Type = t.Type, Channel = t.Channel, Priority = t.Priority,
            State = States.New, OrderRef = t.OrderRef, Subject = t.Subject, Description = t.Description, Tags = [.. t.Tags],
            Attachments = JsonSerializer.Serialize(t.Attachments, Json), Queue = t.Queue, OpenedBy = openedBy,
            OpenedAt = now, UpdatedAt = now, IdempotencyKey = t.IdempotencyKey,
        };
        var open = new NpgsqlBatchCommand($"""
            WITH input AS (
                SELECT c.tier, coalesce(array_position(@tiers, c.tier), cardinality(@tiers) + 1) AS choice
                FROM (SELECT (SELECT tier FROM customer_tiers WHERE customer_id = @customer) AS tier OFFSET 0) c),
            ticket AS (
                INSERT INTO tickets (id, customer_id, type, channel, priority, state, order_ref, subject, description, tags, attachments,
                    queue, customer_tier, opened_by, opened_at, updated_at, idempotency_key, fr_target_minutes, fr_due_at, res_target_minutes, res_due_at)
                SELECT @id, @customer, @type, @channel, @priority, @state, @orderRef, @subject, @description, @tags, @attachments::jsonb,
                    @queue, i.tier, @openedBy, @now, @now, @key, (@frMinutes)[i.choice], (@frDue)[i.choice], (@resMinutes)[i.choice], (@resDue)[i.choice]
                FROM input i
                WHERE @queue IS NULL OR EXISTS (SELECT 1 FROM queues WHERE name = @queue)
                ON CONFLICT (idempotency_key) DO NOTHING
                RETURNING id, fr_due_at, res_due_at),
            search AS (INSERT INTO ticket_search (ticket_id, search_text) SELECT id, @subject || ' ' || @description FROM ticket),
            sla AS (INSERT INTO sla_targets (due_at, ticket_id, target) SELECT fr_due_at, id, 1 FROM ticket UNION ALL SELECT res_due_at, id, 2 FROM ticket),
            step AS (INSERT INTO complaint_steps (ticket_id, step, done_by, done_at) SELECT id, 'receive', @openedBy, @now FROM ticket WHERE @complaint),
            opened AS (SELECT uuid_v7() AS id, 1 AS n, @customer AS customer_id, @opened::jsonb || jsonb_build_object('customerTier', i.tier) AS payload FROM ticket, input i),
            {Outbox.InsertCtes<TicketOpened>("opened", "customer_id")}
            SELECT i.inserted, i.tier, i.choice,
                   CASE WHEN i.inserted THEN true ELSE @queue IS NULL OR EXISTS (SELECT 1 FROM queues WHERE name = @queue) END AS queue_found,
                   CASE WHEN i.inserted THEN false ELSE @key IS NOT NULL AND EXISTS (SELECT 1 FROM tickets WHERE idempotency_key = @key) END AS taken
            FROM (SELECT EXISTS (SELECT 1 FROM ticket) AS inserted, tier, choice FROM input) i
            """);
        var p = open.Parameters;
        p.Add(new NpgsqlParameter("tiers", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = tiers });
        p.Add(new NpgsqlParameter("customer", NpgsqlDbType.Uuid) { Value = row.CustomerId });
        p.Add(new NpgsqlParameter("id", NpgsqlDbType.Uuid) { Value = row.Id });
        p.Add(new NpgsqlParameter("type", NpgsqlDbType.Integer) { Value = row.Type });
        p.Add(new NpgsqlParameter("channel", NpgsqlDbType.Integer) { Value = row.Channel });
        p.Add(new NpgsqlParameter("priority", NpgsqlDbType.Integer) { Value = row.Priority });
        p.Add(new NpgsqlParameter("state", NpgsqlDbType.Integer) { Value = row.State });
        p.Add(new NpgsqlParameter("orderRef", NpgsqlDbType.Text) { Value = (object?)row.OrderRef ?? DBNull.Value });
        p.Add(new NpgsqlParameter("subject", NpgsqlDbType.Text) { Value = row.Subject });
        p.Add(new NpgsqlParameter("description", NpgsqlDbType.Text) { Value = row.Description });
        p.Add(new NpgsqlParameter("tags", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = row.Tags });
        p.Add(new NpgsqlParameter("attachments", NpgsqlDbType.Text) { Value = row.Attachments });
        p.Add(new NpgsqlParameter("queue", NpgsqlDbType.Text) { Value = (object?)row.Queue ?? DBNull.Value });
        p.Add(new NpgsqlParameter("openedBy", NpgsqlDbType.Text) { Value = openedBy });
        p.Add(new NpgsqlParameter("now", NpgsqlDbType.TimestampTz) { Value = now });
        p.Add(new NpgsqlParameter("key", NpgsqlDbType.Text) { Value = (object?)row.IdempotencyKey ?? DBNull.Value });
        p.Add(new NpgsqlParameter("frMinutes", NpgsqlDbType.Array | NpgsqlDbType.Integer) { Value = choices.Select(c => c.FirstResponseMinutes).ToArray() });
        p.Add(new NpgsqlParameter("frDue", NpgsqlDbType.Array | NpgsqlDbType.TimestampTz) { Value = frDue });
        p.Add(new NpgsqlParameter("resMinutes", NpgsqlDbType.Array | NpgsqlDbType.Integer) { Value = choices.Select(c => c.ResolutionMinutes).ToArray() });
        p.Add(new NpgsqlParameter("resDue", NpgsqlDbType.Array | NpgsqlDbType.TimestampTz) { Value = resDue });
        p.Add(new NpgsqlParameter("complaint", NpgsqlDbType.Boolean) { Value = row.Type == TicketTypes.Complaint });
        // TicketOpened without the tier, which only the statement reads; it sets customerTier in the payload.
        p.Add(new NpgsqlParameter("opened", NpgsqlDbType.Text)
        {
            Value = JsonSerializer.Serialize(new TicketOpened(row.Id, row.CustomerId, TypeNames[row.Type], ChannelNames[row.Channel],
                SlaPolicies.PriorityNames[row.Priority], row.OrderRef, row.Tags, null, Utc(now)), Json),
        });
        p.Add(new NpgsqlParameter("outboxTraceParent", NpgsqlDbType.Text) { Value = (object?)Outbox.TraceParent ?? DBNull.Value });
        await using var batch = new NpgsqlBatch(tx.Connection, tx) { BatchCommands = { open } };
        // The audit row rides along: when nothing was inserted the caller rolls back, and the audit row with it.
        if (Crm.ServiceDefaults.Security.Audit.Audit.BatchCommand(row.Id.ToString()) is { } audit) batch.BatchCommands.Add(audit);
        bool inserted, queueFound, taken;
        int choice;
        await using (var reader = await batch.ExecuteReaderAsync(ct))
        {
            await reader.ReadAsync(ct);
            inserted = reader.GetBoolean(0);
            row.CustomerTier = reader.IsDBNull(1) ? null : reader.GetString(1);
            choice = reader.GetInt32(2) - 1;
            queueFound = reader.GetBoolean(3);
            taken = reader.GetBoolean(4);
            while (await reader.NextResultAsync(ct)) { }
        }
        if (!inserted)
        {
            // With the queue there, only the key can have stopped the insert (perhaps a concurrent open that committed
            // while this one waited). Without it, a key taken before still makes this a retry, as it always was.
            if (queueFound || taken) return null;
            throw new NotFoundException("queue", row.Queue!);
        }
        row.FrTargetMinutes = choices[choice].FirstResponseMinutes;
        row.FrDueAt = frDue[choice];
        row.ResTargetMinutes = choices[choice].ResolutionMinutes;
        row.ResDueAt = resDue[choice];
        return row;
    }

    private async Task<TicketRow?> FindByKeyAsync(string key, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        return await connection.QuerySingleOrDefaultAsync<TicketRow>(new CommandDefinition(
            $"SELECT {TicketRow.Columns} FROM tickets WHERE idempotency_key = @key", new { key }, cancellationToken: ct));
    }

    // ---- reading ----

    public async Task<TicketView> GetAsync(Guid id, Caller caller, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        var row = await connection.QuerySingleOrDefaultAsync<TicketRow>(new CommandDefinition(
            $"SELECT {TicketRow.Columns} FROM tickets WHERE id = @id", new { id }, cancellationToken: ct))
            ?? throw new NotFoundException("ticket", id.ToString());
        RequireOwnTicket(caller, row);
        var comments = (await connection.QueryAsync<CommentRow>(new CommandDefinition("""
            SELECT id, ticket_id, author, author_role, visibility, body, attachments::text AS attachments, created_at
            FROM comments WHERE ticket_id = @id AND (visibility = 1 OR NOT @memberOnly) ORDER BY id
            """, new { id, memberOnly = caller.IsMemberOnly }, cancellationToken: ct))).ToList();
        var steps = (await connection.QueryAsync<ComplaintStepRow>(new CommandDefinition(
            "SELECT step, done_by, done_at FROM complaint_steps WHERE ticket_id = @id ORDER BY done_at, step", new { id }, cancellationToken: ct))).ToList();
        return new TicketView(row, comments, steps);
    }

    // ---- changes ----

    /// <summary>
    /// A move to the state the ticket is in already changes nothing (no event, no complaint step, updated_at kept; the
    /// audit row says REPLAYED, as for any repeat that writes nothing):
    /// the request names a target state, so a retry after a lost answer, or a second agent making the same move, gets the
    /// ticket as it is instead of an error.
    /// </summary>
    public Task ChangeStateAsync(Guid id, int target, Caller caller, CancellationToken ct) =>
        MutateAsync(id, caller, async (tx, row, now) =>
        {
            if (!Moves.Contains((row.State, target)))
                throw new PreconditionFailedException("ILLEGAL_TRANSITION", $"ticket/{id}",
                    $"A ticket cannot move from {StateNames[row.State]} to {StateNames[target]}." +
                    (row.State is States.Resolved or States.Closed && target == States.InProgress ? " Use ReopenTicket." : ""));
            await EnterAsync(tx, row, target, caller.Subject, now, ct);
        }, ct, unchanged: row => row.State == target);

    private async Task EnterAsync(NpgsqlTransaction tx, TicketRow row, int target, string by, DateTime now, CancellationToken ct)
    {
        var from = row.State;
        row.State = target;
        switch (target)
        {
            case States.Acknowledged:
                await FirstResponseAsync(tx, row, now, ct);
                break;
            case States.InProgress:
                if (from == States.WaitingOnCustomer) StartClock(row, now);
                if (row.Type == TicketTypes.Complaint) await StepAsync(tx, row, "investigate", by, now, ct);
                break;
            case States.WaitingOnCustomer:
                StopClock(row, now);
                break;
            case States.Resolved:
                await FirstResponseAsync(tx, row, now, ct);
                StartClock(row, now);
                if (row.ResBreachedAt is null)
                {
                    if (now <= row.ResDueAt) row.ResMetAt = now;
                    else await BreachAsync(tx, row, "resolution", row.ResDueAt!.Value, now, ct);
                }
                row.ResolvedAt = now;
                StopClock(row, now);
                if (row.Type == TicketTypes.Complaint) await StepAsync(tx, row, "resolve", by, now, ct);
                await outbox.AddAsync(tx, new TicketResolved(row.Id, row.CustomerId, TypeNames[row.Type], row.Assignee, row.ResMetAt is not null, Utc(now)), ct);
                break;
            case States.Closed:
                row.ClosedAt = now;
                if (row.Type == TicketTypes.Complaint) await StepAsync(tx, row, "follow_up", by, now, ct);
                break;
        }
    }

    public Task ReopenAsync(Guid id, string? reason, Caller caller, CancellationToken ct) =>
        MutateAsync(id, caller, async (tx, row, now) =>
        {
            if (row.State is not (States.Resolved or States.Closed))
                throw new PreconditionFailedException("ILLEGAL_TRANSITION", $"ticket/{id}",
                    $"Only a resolved or closed ticket can be reopened; this one is {StateNames[row.State]}.");
            var window = options.Value.ReopenWindow;
            if (now - row.ResolvedAt!.Value > window)
                throw new PreconditionFailedException("REOPEN_WINDOW_PASSED", $"ticket/{id}",
                    $"The ticket was resolved at {row.ResolvedAt:yyyy-MM-dd HH:mm} UTC; it can be reopened for {window.TotalDays:0.##} days after that. Open a new ticket.");
            row.State = States.InProgress;
            row.ResMetAt = null;
            row.ResolvedAt = null;
            row.ClosedAt = null;
            StartClock(row, now); // the time spent resolved does not count against the resolution target
            if (!string.IsNullOrWhiteSpace(reason))
                await AddCommentInAsync(tx, row, caller, 1, "Reopened: " + reason.Trim(), [], now, ct);
        }, ct);

    public Task AddCommentAsync(Guid id, int visibility, string body, IReadOnlyList<AttachmentRef> attachments, string? requestId, Caller caller,
        CancellationToken ct) =>
        MutateAsync(id, caller, async (tx, row, now) =>
        {
            if (caller.IsMemberOnly && visibility != 1)
                throw new RpcException(new Status(StatusCode.PermissionDenied, "A member may only add public replies."));
            if (!await AddCommentInAsync(tx, row, caller, visibility, body, attachments, now, ct, requestId)) return; // a retry
            if (caller.IsMemberOnly && row.State == States.WaitingOnCustomer)
                await EnterAsync(tx, row, States.InProgress, caller.Subject, now, ct); // the customer answered: the clock runs again
            else if (!caller.IsMemberOnly && visibility == 1 && States.IsOpen(row.State))
                await FirstResponseAsync(tx, row, now, ct);
        }, ct);

    /// <returns>False when a comment with this request id is already on the ticket.</returns>
    private static async Task<bool> AddCommentInAsync(NpgsqlTransaction tx, TicketRow row, Caller caller, int visibility, string body,
        IReadOnlyList<AttachmentRef> attachments, DateTime now, CancellationToken ct, string? requestId = null) =>
        await tx.Connection!.ExecuteAsync(new CommandDefinition("""
            INSERT INTO comments (ticket_id, author, author_role, visibility, body, attachments, request_id, created_at)
            VALUES (@Id, @author, @role, @visibility, @body, @attachments::jsonb, @requestId, @now)
            ON CONFLICT (ticket_id, request_id) DO NOTHING
            """, new { row.Id, author = caller.Subject, role = caller.Role, visibility, body,
                attachments = JsonSerializer.Serialize(attachments, Json), requestId, now }, tx, cancellationToken: ct)) == 1;

    public Task AssignAsync(Guid id, string? agentId, string? queue, bool auto, Caller caller, CancellationToken ct) =>
        MutateAsync(id, caller, async (tx, row, _) =>
        {
            var connection = tx.Connection!;
            if (queue is not null)
            {
                if (await connection.ExecuteScalarAsync<int>(new CommandDefinition("SELECT count(*) FROM queues WHERE name = @queue", new { queue }, tx, cancellationToken: ct)) == 0)
                    throw new NotFoundException("queue", queue);
                row.Queue = queue;
            }
            if (auto)
            {
                // Least loaded: fewest open tickets assigned, across all queues; ties by agent id.
                agentId = await connection.ExecuteScalarAsync<string?>(new CommandDefinition("""
                    SELECT qa.agent_id FROM queue_agents qa
                    LEFT JOIN tickets t ON t.assignee = qa.agent_id AND t.state BETWEEN 1 AND 4
                    WHERE qa.queue = @queue GROUP BY qa.agent_id ORDER BY count(t.id), qa.agent_id LIMIT 1
                    """, new { queue }, tx, cancellationToken: ct))
                    ?? throw new PreconditionFailedException("QUEUE_EMPTY", $"queue/{queue}", $"Queue '{queue}' has no agents to assign to.");
            }
            row.Assignee = agentId ?? (queue is not null ? null : row.Assignee);
        }, ct);

    public Task AnswerSurveyAsync(Guid id, int score, string? comment, Caller caller, CancellationToken ct) =>
        MutateAsync(id, caller, async (tx, row, now) =>
        {
            if (row.State is not (States.Resolved or States.Closed))
                throw new PreconditionFailedException("NOT_RESOLVED", $"ticket/{id}", "The survey opens once the ticket is resolved.");
            if (row.SurveyAnsweredAt is not null)
                throw new AlreadyExistsException("survey", id.ToString(), "This ticket's survey was already answered.");
            row.SurveyScore = score;
            row.SurveyComment = comment;
            row.SurveyAnsweredAt = now;
            await outbox.AddAsync(tx, new SurveyAnswered(row.Id, row.CustomerId, row.Assignee, score, comment, Utc(now)), ct);
        }, ct, memberMayAct: true);

    /// <summary>
    /// Loads and locks the ticket, checks the caller may work it, applies the change, writes it back and commits; when
    /// <paramref name="unchanged"/> says the request is already satisfied, it stops after the checks and writes only the
    /// audit row (REPLAYED).
    /// </summary>
    private async Task MutateAsync(Guid id, Caller caller, Func<NpgsqlTransaction, TicketRow, DateTime, Task> change, CancellationToken ct,
        bool memberMayAct = true, Func<TicketRow, bool>? unchanged = null)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var row = await LockAsync(tx, id, ct) ?? throw new NotFoundException("ticket", id.ToString());
        if (caller.IsMemberOnly)
        {
            if (!memberMayAct) throw new RpcException(new Status(StatusCode.PermissionDenied, "Members cannot do this."));
            RequireOwnTicket(caller, row);
        }
        else await RequireCanWorkAsync(tx, caller, row, ct);
        if (unchanged?.Invoke(row) == true)
        {
            Crm.ServiceDefaults.Security.Audit.Audit.MarkReplayed();
            await Crm.ServiceDefaults.Security.Audit.Audit.RecordAsync(tx, id.ToString(), ct);
            await tx.CommitAsync(ct);
            return;
        }
        var now = clock.UtcNowForDb();
        var running = RunningTargets.Of(row);
        await change(tx, row, now);
        row.UpdatedAt = now;
        await SaveAsync(tx, row, running, ct);
        await Crm.ServiceDefaults.Security.Audit.Audit.RecordAsync(tx, id.ToString(), ct);
        await tx.CommitAsync(ct);
        outbox.Wake();
    }

    internal static async Task<TicketRow?> LockAsync(NpgsqlTransaction tx, Guid id, CancellationToken ct) =>
        await tx.Connection!.QuerySingleOrDefaultAsync<TicketRow>(new CommandDefinition(
            $"SELECT {TicketRow.Columns} FROM tickets WHERE id = @id FOR UPDATE", new { id }, tx, cancellationToken: ct));

    /// <summary>Writes the row back and brings its sla_targets rows in step: <paramref name="runningBefore"/> is what it had.</summary>
    internal static Task SaveAsync(NpgsqlTransaction tx, TicketRow row, List<(short Target, DateTime DueAt)> runningBefore, CancellationToken ct)
    {
        var runningNow = RunningTargets.Of(row);
        var stopped = runningBefore.Except(runningNow).ToList();
        var started = runningNow.Except(runningBefore).ToList();
        var parameters = new DynamicParameters(row);
        parameters.Add("stoppedDue", stopped.Select(x => x.DueAt).ToArray());
        parameters.Add("stoppedTarget", stopped.Select(x => (int)x.Target).ToArray());
        parameters.Add("startedDue", started.Select(x => x.DueAt).ToArray());
        parameters.Add("startedTarget", started.Select(x => (int)x.Target).ToArray());
        return tx.Connection!.ExecuteAsync(new CommandDefinition("""
            WITH stopped AS (
                DELETE FROM sla_targets s USING unnest(@stoppedDue::timestamptz[], @stoppedTarget::int[]) AS x(due_at, target)
                WHERE s.due_at = x.due_at AND s.ticket_id = @Id AND s.target = x.target),
            started AS (
                INSERT INTO sla_targets (due_at, ticket_id, target) SELECT x.due_at, @Id, x.target
                FROM unnest(@startedDue::timestamptz[], @startedTarget::int[]) AS x(due_at, target))
            UPDATE tickets SET priority = @Priority, state = @State, queue = @Queue, assignee = @Assignee, escalated = @Escalated,
                updated_at = @UpdatedAt, fr_met_at = @FrMetAt, fr_breached_at = @FrBreachedAt, first_response_at = @FirstResponseAt,
                res_due_at = @ResDueAt, res_met_at = @ResMetAt, res_breached_at = @ResBreachedAt, paused_since = @PausedSince,
                paused_seconds = @PausedSeconds, resolved_at = @ResolvedAt, closed_at = @ClosedAt, survey_score = @SurveyScore,
                survey_comment = @SurveyComment, survey_answered_at = @SurveyAnsweredAt
            WHERE id = @Id
            """, parameters, tx, cancellationToken: ct));
    }

    // ---- access ----

    private static void RequireOwnTicket(Caller caller, TicketRow row)
    {
        if (caller.IsMemberOnly && (!Guid.TryParse(caller.Subject, out var self) || self != row.CustomerId))
            throw new RpcException(new Status(StatusCode.PermissionDenied, "A member may only see and act on its own tickets."));
    }

    /// <summary>
    /// Agents work tickets assigned to them, in their queues, or not routed yet; supervisors every queue of their team
    /// (and queues without a team); admin and system everything.
    /// </summary>
    private static async Task RequireCanWorkAsync(NpgsqlTransaction tx, Caller caller, TicketRow row, CancellationToken ct)
    {
        if (caller.Roles.Contains(Roles.Admin) || caller.Roles.Contains(Roles.System)) return;
        if (row.Assignee == caller.Subject || (row.Queue is null && row.Assignee is null)) return;
        if (row.Queue is { } queue)
        {
            var connection = tx.Connection!;
            if (caller.Roles.Contains(Roles.ServiceSupervisor))
            {
                var team = await connection.ExecuteScalarAsync<string?>(new CommandDefinition(
                    "SELECT team FROM queues WHERE name = @queue", new { queue }, tx, cancellationToken: ct));
                if (team is null || team == caller.Team) return;
            }
            if (caller.Roles.Contains(Roles.Service) && await connection.ExecuteScalarAsync<bool>(new CommandDefinition(
                    "SELECT EXISTS (SELECT 1 FROM queue_agents WHERE queue = @queue AND agent_id = @agent)",
                    new { queue, agent = caller.Subject }, tx, cancellationToken: ct)))
                return;
        }
        else if (caller.Roles.Contains(Roles.ServiceSupervisor)) return; // assigned to someone, no queue: a supervisor may step in
        throw new RpcException(new Status(StatusCode.PermissionDenied, "This ticket is not in your queues."));
    }

    // ---- SLA clock ----

    /// <summary>Stops the resolution clock (waiting on the customer, resolved): no due time while stopped.</summary>
    private static void StopClock(TicketRow row, DateTime now)
    {
        if (row.PausedSince is not null) return;
        row.PausedSince = now;
        row.ResDueAt = null;
    }

    /// <summary>Restarts the resolution clock; the business time it stood still moves the due time out.</summary>
    private void StartClock(TicketRow row, DateTime now)
    {
        if (row.PausedSince is not { } since) return;
        row.PausedSeconds += (long)calendar.Between(since, now).TotalSeconds;
        row.PausedSince = null;
        row.ResDueAt = calendar.Add(row.OpenedAt, TimeSpan.FromMinutes(row.ResTargetMinutes) + TimeSpan.FromSeconds(row.PausedSeconds)).ToMicroseconds();
    }

    private async Task FirstResponseAsync(NpgsqlTransaction tx, TicketRow row, DateTime now, CancellationToken ct)
    {
        if (row.FirstResponseAt is not null) return;
        row.FirstResponseAt = now;
        if (row.FrBreachedAt is not null) return;
        if (now <= row.FrDueAt) row.FrMetAt = now;
        else await BreachAsync(tx, row, "first_response", row.FrDueAt, now, ct);
    }

    /// <summary>
    /// Marks a target breached (once: callers check its breached_at first) and publishes SlaBreached: a first response or
    /// resolution that comes late. The scheduler breaches overdue targets itself, with escalation (SlaScheduler).
    /// </summary>
    private async Task BreachAsync(NpgsqlTransaction tx, TicketRow row, string target, DateTime dueAt, DateTime now, CancellationToken ct)
    {
        if (target == "first_response") row.FrBreachedAt = now; else row.ResBreachedAt = now;
        await outbox.AddAsync(tx, new SlaBreached(row.Id, row.CustomerId, target, Utc(dueAt), Utc(now),
            SlaPolicies.PriorityNames[row.Priority], row.Queue ?? ""), ct);
    }

    private static Task StepAsync(NpgsqlTransaction tx, TicketRow row, string step, string by, DateTime now, CancellationToken ct) =>
        tx.Connection!.ExecuteAsync(new CommandDefinition("""
            INSERT INTO complaint_steps (ticket_id, step, done_by, done_at) VALUES (@Id, @step, @by, @now) ON CONFLICT DO NOTHING
            """, new { row.Id, step, by, now }, tx, cancellationToken: ct));

    // ---- queues ----

    public async Task UpsertQueueAsync(string name, string? team, bool supervisorQueue, IReadOnlyList<string> agents, Caller caller, CancellationToken ct)
    {
        if (!caller.Roles.Contains(Roles.Admin) && (team is null || team != caller.Team))
            throw new RpcException(new Status(StatusCode.PermissionDenied, "A supervisor manages the queues of its own team only."));
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var existing = (await connection.QueryAsync<string?>(new CommandDefinition(
            "SELECT team FROM queues WHERE name = @name FOR UPDATE", new { name }, tx, cancellationToken: ct))).ToList();
        if (existing.Count == 1 && !caller.Roles.Contains(Roles.Admin) && existing[0] != caller.Team)
            throw new RpcException(new Status(StatusCode.PermissionDenied, "This queue belongs to another team."));
        await connection.ExecuteAsync(new CommandDefinition("""
            INSERT INTO queues (name, team, supervisor_queue) VALUES (@name, @team, @supervisorQueue)
            ON CONFLICT (name) DO UPDATE SET team = excluded.team, supervisor_queue = excluded.supervisor_queue
            """, new { name, team, supervisorQueue }, tx, cancellationToken: ct));
        await connection.ExecuteAsync(new CommandDefinition("DELETE FROM queue_agents WHERE queue = @name", new { name }, tx, cancellationToken: ct));
        await connection.ExecuteAsync(new CommandDefinition(
            "INSERT INTO queue_agents (queue, agent_id) SELECT @name, unnest(@agents) ON CONFLICT DO NOTHING",
            new { name, agents = agents.ToArray() }, tx, cancellationToken: ct));
        await Crm.ServiceDefaults.Security.Audit.Audit.RecordAsync(tx, name, ct);
        await tx.CommitAsync(ct);
    }

    internal static DateTimeOffset Utc(DateTime value) => new(DateTime.SpecifyKind(value, DateTimeKind.Utc));
}
