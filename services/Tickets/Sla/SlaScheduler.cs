using Crm.Contracts;
using Crm.Messaging;
using Crm.ServiceDefaults.Data;
using Crm.Tickets.Domain;
using Dapper;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;

namespace Crm.Tickets.Sla;

public sealed record SchedulerPass(int Breaches, int NearBreaches, int CareCallsOpened);

/// <summary>
/// One pass: every running SLA target past its due time is breached (SlaBreached once per target, the ticket escalated),
/// targets about to fall due are logged once as near-breach, and care calls whose time has come are opened. It reads the
/// narrow sla_targets table only; tickets are taken with FOR UPDATE SKIP LOCKED, so two instances never breach the same
/// target twice.
/// </summary>
public sealed class SlaScheduler(NpgsqlDataSource db, Outbox outbox, TimeProvider clock, TicketStore store, IOptions<TicketsOptions> options,
    ILogger<SlaScheduler> logger)
{
    private const int Batch = 500;

    public async Task<SchedulerPass> RunOnceAsync(CancellationToken ct)
    {
        // Chunks run on several connections at once: a chunk is one backend's work (about 0.1 ms of Postgres CPU per
        // breach, mostly the ticket update and the event rows), so a backlog is cleared that many times faster. They
        // take disjoint targets (the due rows are locked SKIP LOCKED too).
        var chunks = await Task.WhenAll(Enumerable.Range(0, options.Value.SchedulerConnections).Select(_ => BreachChunksAsync(ct)));
        var breaches = chunks.Sum();
        var near = await MarkNearBreachesAsync(ct);
        var care = await OpenCareCallsAsync(ct);
        // The relay is woken once the pass is done, not after each committed batch: on a busy pass its publishing (C#,
        // broker and its own Postgres work, more CPU per event than the breach itself) otherwise competes with the
        // remaining batches for the same cores, and every ticket waits longer for its escalation. The first batch's
        // events wait for the rest of the pass instead, a fraction of the SLA scheduler's interval (a pass that fails midway
        // leaves its committed events to the relay's poll).
        if (breaches + care > 0) outbox.Wake();
        return new SchedulerPass(breaches, near, care);
    }

    private async Task<int> BreachChunksAsync(CancellationToken ct)
    {
        var breaches = 0;
        bool more;
        do
        {
            (var n, more) = await BreachBatchAsync(ct);
            breaches += n;
        } while (more);
        return breaches;
    }

    /// <summary>
    /// A chunk of due targets in one statement, events included. The statement takes the due targets, locks their tickets
    /// (SKIP LOCKED: a ticket someone is working is left for the next pass), deletes exactly those targets (a target met
    /// or paused meanwhile is gone already and is not breached), and escalates each ticket once per breached target: the
    /// priority one step up per target, the queue to the supervisor queue of its team (else Tickets:SupervisorQueue),
    /// applied once or twice. It writes one SlaBreached per target, first response before resolution and tickets in id
    /// order, each with the priority and queue after its own step, built in SQL (migration 0005) and written the way
    /// Outbox writes them: nothing per breach is read back, serialized or sent from here. The detection time is formatted
    /// once (a scalar subquery), not per event.
    /// The due targets are locked first, then their tickets, both SKIP LOCKED: the statement never waits for a lock, so it
    /// cannot deadlock with TicketStore (which locks a ticket, then its targets) nor with a chunk running beside it, and
    /// a target whose ticket was skipped stays for a later pass. The DELETE names each target by its whole key, so it
    /// needs no scan of the due range.
    /// Each CTE carries forward what the next needs (the lock row holds its target, the deleted row its ticket's
    /// priority, queue and customer) instead of joining two CTEs: Postgres estimates a join on the three-column key
    /// at one row and then planned the delete as a nested loop over both 500-row CTEs, 250,000 comparisons a batch.
    /// "more": a full chunk was breached and targets beyond it were due too (the statement's snapshot still sees the
    /// chunk, hence the offset; it also sees what a chunk beside it holds), so the pass goes on; a pass that breached a
    /// full chunk no longer runs a last, empty one.
    /// A chunk cut short by SKIP LOCKED ends the pass, so targets of tickets held by someone else never make it spin.
    /// </summary>
    private static readonly string BreachSql = $"""
        WITH due AS (
            SELECT due_at, ticket_id, target FROM sla_targets WHERE due_at <= @now ORDER BY due_at LIMIT {Batch} FOR UPDATE SKIP LOCKED),
        locked AS (
            SELECT d.due_at, d.ticket_id, d.target, t.customer_id, t.priority, t.queue
            FROM due d JOIN tickets t ON t.id = d.ticket_id ORDER BY t.id FOR UPDATE OF t SKIP LOCKED),
        gone AS (
            DELETE FROM sla_targets s USING locked l
            WHERE s.due_at = l.due_at AND s.ticket_id = l.ticket_id AND s.target = l.target
            RETURNING s.ticket_id, s.target, s.due_at, l.customer_id, l.priority, l.queue),
        escalation AS (
            SELECT q.name, (SELECT s.name FROM queues s WHERE s.team = q.team AND s.supervisor_queue ORDER BY s.name LIMIT 1) AS supervisor
            FROM queues q),
        steps AS (
            SELECT g.ticket_id, g.target, g.due_at, g.customer_id, g.priority,
                   count(*) OVER (PARTITION BY g.ticket_id)::int AS n,
                   row_number() OVER (PARTITION BY g.ticket_id ORDER BY g.target)::int AS step,
                   coalesce(e1.supervisor, @fallback) AS first_queue, coalesce(e2.supervisor, @fallback) AS second_queue
            FROM gone g
            LEFT JOIN escalation e1 ON e1.name = g.queue
            LEFT JOIN escalation e2 ON e2.name = coalesce(e1.supervisor, @fallback)),
        escalated AS (
            UPDATE tickets t SET
                priority = least(b.priority + b.n, @urgent),
                queue = CASE WHEN b.n = 1 THEN b.first_queue ELSE b.second_queue END,
                escalated = true, updated_at = @now,
                fr_breached_at = CASE WHEN b.fr THEN @now ELSE t.fr_breached_at END,
                res_breached_at = CASE WHEN b.res THEN @now ELSE t.res_breached_at END
            FROM (SELECT ticket_id, min(priority) AS priority, min(n) AS n, min(first_queue) AS first_queue, min(second_queue) AS second_queue,
                         bool_or(target = {RunningTargets.FirstResponse}) AS fr, bool_or(target = {RunningTargets.Resolution}) AS res
                  FROM steps GROUP BY ticket_id) b
            WHERE t.id = b.ticket_id
            RETURNING t.id),
        events AS (
            SELECT (@ids::uuid[])[row_number() OVER byTarget] AS id, row_number() OVER byTarget AS n, s.customer_id, jsonb_build_object(
                'ticketId', s.ticket_id, 'customerId', s.customer_id,
                'target', CASE s.target WHEN {RunningTargets.FirstResponse} THEN 'first_response' ELSE 'resolution' END,
                'dueAt', json_instant(s.due_at), 'detectedAt', (SELECT json_instant(@now)),
                'newPriority', (@priorityNames::text[])[least(s.priority + s.step, @urgent) + 1],
                'escalatedTo', CASE WHEN s.step = 1 THEN s.first_queue ELSE s.second_queue END) AS payload
            FROM steps s
            WINDOW byTarget AS (ORDER BY s.ticket_id, s.target)),
        {Outbox.InsertCtes<SlaBreached>("events", "customer_id")}
        SELECT (SELECT count(*)::int FROM change_rows) AS found, (SELECT count(*)::int FROM escalated) AS tickets,
               EXISTS (SELECT FROM sla_targets WHERE due_at <= @now ORDER BY due_at OFFSET {Batch}) AS more
        """;

    /// <summary>
    /// The breach statement is prepared on each connection and run with its generic plan: planned anew (as a custom plan
    /// is, on every execution) its CTE chain took 1–5 ms of planning per run (EXPLAIN SUMMARY, 100,000 open tickets), and
    /// every pass runs it at least once. Its one parameter that steers a plan is the due time, and every use of it is an
    /// index range read in due order with a LIMIT or OFFSET, so the plan does not depend on its value.
    /// </summary>
    private const string GenericPlan = "SET LOCAL plan_cache_mode = force_generic_plan;\n";

    private async Task<(int Breaches, bool More)> BreachBatchAsync(CancellationToken ct)
    {
        var now = clock.UtcNowForDb();
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        await using var command = new NpgsqlCommand(GenericPlan + BreachSql, connection, tx)
        {
            Parameters =
            {
                new("now", NpgsqlDbType.TimestampTz) { Value = now },
                new("ids", NpgsqlDbType.Array | NpgsqlDbType.Uuid) { Value = EventIds() },
                new("urgent", NpgsqlDbType.Integer) { Value = Priorities.Urgent },
                new("fallback", NpgsqlDbType.Text) { Value = options.Value.SupervisorQueue },
                new("priorityNames", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = SlaPolicies.PriorityNames },
                new("outboxTraceParent", NpgsqlDbType.Text) { Value = (object?)Outbox.TraceParent ?? DBNull.Value },
            },
        };
        await command.PrepareAsync(ct); // once per pooled connection; later passes find it prepared
        int found, tickets;
        bool more;
        await using (var reader = await command.ExecuteReaderAsync(ct))
        {
            await reader.ReadAsync(ct);
            (found, tickets, more) = (reader.GetInt32(0), reader.GetInt32(1), reader.GetBoolean(2));
        }
        await tx.CommitAsync(ct);
        if (found == 0) return (0, false);
        logger.LogWarning("SLA pass breached {Targets} targets on {Tickets} tickets and escalated them", found, tickets);
        return (found, found >= Batch && more);
    }

    /// <summary>
    /// Outbox ids for a batch's events (at most one per target taken), made as Outbox makes them: uuid_v7() in SQL cost
    /// about 7 µs of Postgres CPU per event.
    /// </summary>
    private static Guid[] EventIds()
    {
        var ids = new Guid[Batch];
        for (var i = 0; i < ids.Length; i++) ids[i] = Guid.CreateVersion7();
        return ids;
    }

    /// <summary>Marks each running target that falls due within the window, once; one log line for the pass.</summary>
    private async Task<int> MarkNearBreachesAsync(CancellationToken ct)
    {
        var until = clock.UtcNowForDb() + options.Value.NearBreachWindow;
        await using var connection = await db.OpenConnectionAsync(ct);
        var near = (await connection.QueryAsync<(Guid TicketId, short Target)>(new CommandDefinition("""
            UPDATE sla_targets SET near_breach = true WHERE due_at <= @until AND NOT near_breach RETURNING ticket_id, target
            """, new { until }, cancellationToken: ct))).ToList();
        if (near.Count > 0)
            logger.LogWarning("{Targets} SLA targets are about to breach (within {Window})", near.Count, options.Value.NearBreachWindow);
        if (logger.IsEnabled(LogLevel.Debug))
            foreach (var (ticketId, target) in near)
                logger.LogDebug("Ticket {TicketId} is about to breach its {Target} target", ticketId, RunningTargets.Name(target));
        return near.Count;
    }

    private async Task<int> OpenCareCallsAsync(CancellationToken ct)
    {
        var now = clock.UtcNowForDb();
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var due = (await connection.QueryAsync<(Guid OrderId, Guid CustomerId, string ExternalOrderId, decimal AmountPaid)>(new CommandDefinition("""
            SELECT order_id, customer_id, external_order_id, amount_paid FROM care_calls
            WHERE ticket_id IS NULL AND due_at <= @now ORDER BY due_at LIMIT 100 FOR UPDATE SKIP LOCKED
            """, new { now }, tx, cancellationToken: ct))).ToList();
        foreach (var call in due)
        {
            var ticket = await store.OpenInAsync(tx, new NewTicket(call.CustomerId, TicketTypes.CareCall, 2 /* phone */, Priorities.Normal,
                call.ExternalOrderId, $"Care call: how is the purchase of order {call.ExternalOrderId}?",
                $"Call the customer about order {call.ExternalOrderId} ({call.AmountPaid:0.00} yuan paid): how did it go, anything we can do?",
                ["care-call"], [], null, $"care-call:{call.OrderId}"), "system", ct);
            var ticketId = ticket?.Id ?? await connection.ExecuteScalarAsync<Guid>(new CommandDefinition(
                "SELECT id FROM tickets WHERE idempotency_key = @key", new { key = $"care-call:{call.OrderId}" }, tx, cancellationToken: ct));
            await connection.ExecuteAsync(new CommandDefinition("UPDATE care_calls SET ticket_id = @ticketId WHERE order_id = @OrderId",
                new { ticketId, call.OrderId }, tx, cancellationToken: ct));
        }
        await tx.CommitAsync(ct);
        return due.Count;
    }
}

/// <summary>Runs the scheduler every Tickets:SchedulerInterval (on the injected clock).</summary>
public sealed class SlaSchedulerService(SlaScheduler scheduler, TimeProvider clock, IOptions<TicketsOptions> options, ILogger<SlaSchedulerService> logger)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // PeriodicTimer takes at most ~49 days; below 100 ms passes would only cost without making breaches more punctual.
        var interval = TimeSpan.FromTicks(Math.Clamp(options.Value.SchedulerInterval.Ticks, TimeSpan.TicksPerMillisecond * 100, TimeSpan.FromDays(30).Ticks));
        using var timer = new PeriodicTimer(interval, clock);
        do
        {
            try { await scheduler.RunOnceAsync(stoppingToken); }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                logger.LogError(ex, "SLA scheduler pass failed; it runs again at the next interval");
            }
        } while (await timer.WaitForNextTickAsync(stoppingToken));
    }
}

/// <summary>A paid order above the threshold schedules one care call (the order id is the key: redeliveries change nothing).</summary>
public sealed class OrderPaidConsumer(NpgsqlDataSource db, Outbox outbox, IOptions<TicketsOptions> options)
    : InboxConsumer<OrderPaid>(db, outbox)
{
    protected override async Task HandleAsync(MassTransit.ConsumeContext<OrderPaid> context, NpgsqlTransaction tx)
    {
        var order = context.Message;
        var care = options.Value.CareCall;
        if (order.AmountPaid <= care.Threshold) return;
        await tx.Connection!.ExecuteAsync(new CommandDefinition("""
            INSERT INTO care_calls (order_id, customer_id, external_order_id, amount_paid, due_at)
            VALUES (@OrderId, @CustomerId, @ExternalOrderId, @AmountPaid, @due) ON CONFLICT DO NOTHING
            """, new { order.OrderId, order.CustomerId, order.ExternalOrderId, order.AmountPaid, due = order.PaidAt.UtcDateTime + care.Delay },
            tx, cancellationToken: context.CancellationToken));
    }
}

/// <summary>Keeps each customer's tier from TierChanged, the highest sequence winning (sequence 0: the later change).</summary>
public sealed class TierChangedConsumer(NpgsqlDataSource db) : InboxConsumer<TierChanged>(db)
{
    protected override Task HandleAsync(MassTransit.ConsumeContext<TierChanged> context, NpgsqlTransaction tx)
    {
        var e = context.Message;
        return tx.Connection!.ExecuteAsync(new CommandDefinition("""
            INSERT INTO customer_tiers (customer_id, tier, sequence, changed_at) VALUES (@CustomerId, @NewTier, @Sequence, @changedAt)
            ON CONFLICT (customer_id) DO UPDATE SET tier = excluded.tier, sequence = excluded.sequence, changed_at = excluded.changed_at
            WHERE excluded.sequence > customer_tiers.sequence
               OR (excluded.sequence = 0 AND customer_tiers.sequence = 0 AND excluded.changed_at > customer_tiers.changed_at)
            """, new { e.CustomerId, e.NewTier, e.Sequence, changedAt = e.ChangedAt.UtcDateTime }, tx, cancellationToken: context.CancellationToken));
    }
}
