using Crm.Contracts;
using Crm.Messaging;
using Crm.ServiceDefaults.Data;
using Crm.Tickets.Domain;
using Dapper;
using Microsoft.Extensions.Options;
using Npgsql;

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
        var breaches = 0;
        int found;
        do
        {
            (found, var n) = await BreachBatchAsync(ct);
            breaches += n;
        } while (found >= Batch);
        var near = await MarkNearBreachesAsync(ct);
        var care = await OpenCareCallsAsync(ct);
        return new SchedulerPass(breaches, near, care);
    }

    /// <summary>
    /// A batch of due targets in a fixed number of statements, whatever its size: lock the tickets, delete their due
    /// targets (RETURNING what was due), one UPDATE escalating every ticket, one INSERT of every SlaBreached.
    /// </summary>
    private async Task<(int Found, int Breaches)> BreachBatchAsync(CancellationToken ct)
    {
        var now = clock.UtcNowForDb();
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        // Tickets first, then their targets: the order in which TicketStore takes them too, so the two never deadlock.
        var tickets = (await connection.QueryAsync<DueTicket>(new CommandDefinition($"""
            SELECT id, customer_id, priority, queue FROM tickets
            WHERE id IN (SELECT ticket_id FROM sla_targets WHERE due_at <= @now ORDER BY due_at LIMIT {Batch})
            ORDER BY id FOR UPDATE SKIP LOCKED
            """, new { now }, tx, cancellationToken: ct))).ToDictionary(t => t.Id);
        if (tickets.Count == 0) return (0, 0);
        // Read under the ticket locks: a target met or paused meanwhile is gone already and is not breached.
        var due = (await connection.QueryAsync<(Guid TicketId, short Target, DateTime DueAt)>(new CommandDefinition("""
            DELETE FROM sla_targets WHERE due_at <= @now AND ticket_id = ANY(@ids) RETURNING ticket_id, target, due_at
            """, new { now, ids = tickets.Keys.ToArray() }, tx, cancellationToken: ct)))
            .OrderBy(x => x.TicketId).ThenBy(x => x.Target).ToList();

        // Escalation goes to the supervisor queue of the ticket's team, else the configured one; one query for the batch.
        var supervisors = (await connection.QueryAsync<(string Queue, string? Supervisor)>(new CommandDefinition("""
            SELECT q.name, (SELECT s.name FROM queues s WHERE s.team = q.team AND s.supervisor_queue ORDER BY s.name LIMIT 1)
            FROM queues q WHERE q.team IS NOT NULL
            """, transaction: tx, cancellationToken: ct))).ToDictionary(x => x.Queue, x => x.Supervisor);
        string Escalate(string? queue) => queue is not null && supervisors.GetValueOrDefault(queue) is { } s ? s : options.Value.SupervisorQueue;

        // Each target breached once: the priority goes one step up per breach and the event carries where it went.
        var events = new List<SlaBreached>(due.Count);
        foreach (var (ticketId, target, dueAt) in due)
        {
            var t = tickets[ticketId];
            t.Priority = Math.Min(t.Priority + 1, Priorities.Urgent);
            t.Queue = Escalate(t.Queue);
            if (target == RunningTargets.FirstResponse) t.FirstResponse = true; else t.Resolution = true;
            events.Add(new SlaBreached(t.Id, t.CustomerId, RunningTargets.Name(target), TicketStore.Utc(dueAt), TicketStore.Utc(now),
                SlaPolicies.PriorityNames[t.Priority], t.Queue));
        }
        var breached = tickets.Values.Where(t => t.FirstResponse || t.Resolution).ToList();
        await connection.ExecuteAsync(new CommandDefinition("""
            UPDATE tickets t SET priority = u.priority, queue = u.queue, escalated = true, updated_at = @now,
                fr_breached_at = CASE WHEN u.fr THEN @now ELSE t.fr_breached_at END,
                res_breached_at = CASE WHEN u.res THEN @now ELSE t.res_breached_at END
            FROM unnest(@ids, @priorities, @queues, @frs, @ress) AS u(id, priority, queue, fr, res)
            WHERE t.id = u.id
            """, new
            {
                now, ids = breached.Select(t => t.Id).ToArray(), priorities = breached.Select(t => t.Priority).ToArray(),
                queues = breached.Select(t => t.Queue).ToArray(), frs = breached.Select(t => t.FirstResponse).ToArray(),
                ress = breached.Select(t => t.Resolution).ToArray(),
            }, tx, cancellationToken: ct));
        await outbox.AddRangeAsync(tx, events, ct);
        await tx.CommitAsync(ct);
        outbox.Wake();
        if (events.Count > 0)
            logger.LogWarning("SLA pass breached {Targets} targets on {Tickets} tickets and escalated them", events.Count, breached.Count);
        if (logger.IsEnabled(LogLevel.Debug))
            foreach (var t in breached)
                logger.LogDebug("Ticket {TicketId} breached its SLA; escalated to {Queue} at priority {Priority}", t.Id, t.Queue, t.Priority);
        return (due.Count, events.Count);
    }

    private sealed class DueTicket
    {
        public Guid Id { get; set; }
        public Guid CustomerId { get; set; }
        public int Priority { get; set; }
        public string? Queue { get; set; }
        public bool FirstResponse { get; set; }
        public bool Resolution { get; set; }
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
        if (due.Count > 0) outbox.Wake();
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
