using Crm.ServiceDefaults.Data;
using Crm.Tickets;
using Crm.Tickets.Domain;
using Crm.Tickets.Sla;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;

namespace Crm.Bench.Tickets;

/// <summary>
/// Writes tickets with binary COPY after the service applied its migrations. Each row is what OpenTicket and the state
/// changes after it would have left (the service's own TicketRow, SLA due times from its own calendar and policies for
/// the ticket's priority and tier; complaints get their "receive" step), back-dated so that its targets fall where the
/// phase needs them; each running SLA target gets its sla_targets row. No outbox rows: their events were published long ago.
/// </summary>
public sealed class TicketSeeder(NpgsqlDataSource db, TicketsOptions options)
{
    public static readonly string[] Teams = ["east", "west", "north", "south"];
    public const int AgentsPerQueue = 10;
    private const int Customers = 20_000;

    private readonly BusinessCalendar _calendar = BusinessCalendar.From(options.Calendar);
    private readonly SlaPolicies _policies = new(Microsoft.Extensions.Options.Options.Create(options));
    private readonly Random _random = new(42);
    private readonly Guid[] _customers = Enumerable.Range(0, Customers).Select(i => new Guid(i, 0x7ab, 0x4c1, 0, 0, 0, 0, 0, 0, 0, (byte)(i % 256))).ToArray();
    private readonly Dictionary<Guid, string> _tiers = [];

    private static readonly string[] Subjects =
    [
        "钻戒镶嵌松动", "Ring resizing request", "项链扣坏了", "Refund for a returned bracelet", "Earring back missing", "手镯清洗预约",
        "Engraving spelled wrong", "积分没有到账", "Watch strap replacement", "Gift box arrived damaged", "门店服务态度", "Suggestion: online try-on",
    ];
    private static readonly string[] Descriptions =
    [
        "The customer bought the piece last month and reports that the stone moves when touched; asks for an inspection at the store.",
        "客户上个月在门店购买，反映佩戴时卡扣容易松开，希望尽快维修并确认是否在保修期内。",
        "Order delivered yesterday; the customer would like to exchange it for another size and asks how long it takes.",
        "会员询问清洗和抛光服务的价格与预约时间，并希望同时检查戒圈尺寸。",
        "The customer is unhappy with how long the repair is taking and asks for a call back from the store manager.",
    ];
    private static readonly string[] TagPool = ["quality", "setting", "resize", "refund", "delivery", "vip", "repair", "cleaning", "engraving", "packaging"];

    /// <summary>Customer tiers as TierChanged would have left them: one customer in ten is S5 or S6, one in five S3 or S4.</summary>
    public async Task SeedTiersAsync(CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var writer = await connection.BeginBinaryImportAsync(
            "COPY customer_tiers (customer_id, tier, sequence, changed_at) FROM STDIN (FORMAT BINARY)", ct);
        var now = DateTime.UtcNow.ToMicroseconds();
        foreach (var customer in _customers)
        {
            var roll = _random.Next(10);
            var tier = roll switch { 0 => _random.Next(2) == 0 ? "S5" : "S6", 1 or 2 => _random.Next(2) == 0 ? "S3" : "S4", _ => null };
            if (tier is null) continue;
            _tiers[customer] = tier;
            await writer.StartRowAsync(ct);
            await writer.WriteAsync(customer, NpgsqlDbType.Uuid, ct);
            await writer.WriteAsync(tier, NpgsqlDbType.Text, ct);
            await writer.WriteAsync(1L, NpgsqlDbType.Bigint, ct);
            await writer.WriteAsync(now, NpgsqlDbType.TimestampTz, ct);
        }
        await writer.CompleteAsync(ct);
    }

    /// <summary>
    /// Open tickets (new 40 %, acknowledged 20 %, in progress 30 %, waiting on the customer 10 %) whose running targets fall
    /// due between <paramref name="margin"/> and their full target from now, so none comes due during the run.
    /// </summary>
    public Task<List<TicketRow>> SeedOpenAsync(int count, TimeSpan margin, CancellationToken ct)
    {
        var now = DateTime.UtcNow.ToMicroseconds();
        var rows = new List<TicketRow>(count);
        for (var i = 0; i < count; i++)
        {
            var row = NewRow(out var targets);
            var state = _random.Next(10) switch { < 4 => States.New, < 6 => States.Acknowledged, < 9 => States.InProgress, _ => States.WaitingOnCustomer };
            // Age: a new ticket's first response and an answered one's resolution are still margin ahead.
            var running = state == States.New ? targets.FirstResponseMinutes : targets.ResolutionMinutes;
            var maxAge = Math.Max(0, running - margin.TotalMinutes);
            var opened = now - TimeSpan.FromMinutes(_random.NextDouble() * maxAge);
            Place(row, opened, targets);
            row.State = state;
            if (state != States.New)
            {
                var answered = opened + TimeSpan.FromMinutes(_random.NextDouble() * Math.Min((now - opened).TotalMinutes, targets.FirstResponseMinutes));
                row.FirstResponseAt = row.FrMetAt = answered.ToMicroseconds();
                row.Assignee = $"agent-{row.Queue}-{_random.Next(AgentsPerQueue)}";
                row.UpdatedAt = row.FirstResponseAt.Value;
                if (state == States.WaitingOnCustomer)
                {
                    row.PausedSince = (answered + (now - answered) * _random.NextDouble()).ToMicroseconds();
                    row.ResDueAt = null;
                    row.UpdatedAt = row.PausedSince.Value;
                }
            }
            rows.Add(row);
        }
        return WriteAsync(rows, ct);
    }

    /// <summary>New tickets whose first response fell due 1-10 minutes ago: the next scheduler pass breaches each once.</summary>
    public Task<List<TicketRow>> SeedOverdueAsync(int count, CancellationToken ct)
    {
        var now = DateTime.UtcNow.ToMicroseconds();
        var rows = new List<TicketRow>(count);
        for (var i = 0; i < count; i++)
        {
            var row = NewRow(out var targets);
            var due = now - TimeSpan.FromMinutes(1 + 9 * _random.NextDouble());
            Place(row, due - TimeSpan.FromMinutes(targets.FirstResponseMinutes), targets); // 24×7: due = opened + target
            rows.Add(row);
        }
        return WriteAsync(rows, ct);
    }

    /// <summary>New urgent tickets whose first response falls due at the given instants (real time, 24×7 calendar).</summary>
    public Task<List<TicketRow>> SeedDueAtAsync(IReadOnlyList<DateTime> dueTimes, CancellationToken ct)
    {
        var rows = new List<TicketRow>(dueTimes.Count);
        foreach (var due in dueTimes)
        {
            var row = NewRow(out _, Priorities.Urgent);
            var targets = _policies.For(row.Priority, row.CustomerTier);
            Place(row, due.ToMicroseconds() - TimeSpan.FromMinutes(targets.FirstResponseMinutes), targets);
            rows.Add(row);
        }
        return WriteAsync(rows, ct);
    }

    private TicketRow NewRow(out SlaTargets targets, int? priority = null)
    {
        var customer = _customers[_random.Next(_customers.Length)];
        var type = 1 + _random.Next(5); // inquiry .. suggestion (care calls are the service's own)
        var team = Teams[_random.Next(Teams.Length)];
        var row = new TicketRow
        {
            CustomerId = customer, Type = type, Channel = 1 + _random.Next(5),
            Priority = priority ?? _random.Next(10) switch { < 2 => Priorities.Low, < 7 => Priorities.Normal, < 9 => Priorities.High, _ => Priorities.Urgent },
            State = States.New, OrderRef = type is 3 or 4 ? $"SO-2026-{_random.Next(1_000_000):D6}" : null,
            Subject = Subjects[_random.Next(Subjects.Length)], Description = Descriptions[_random.Next(Descriptions.Length)],
            Tags = [.. Enumerable.Range(0, _random.Next(4)).Select(_ => TagPool[_random.Next(TagPool.Length)]).Distinct()],
            Queue = $"{team}-desk", CustomerTier = _tiers.GetValueOrDefault(customer),
            OpenedBy = _random.Next(4) == 0 ? customer.ToString() : $"agent-{team}-desk-{_random.Next(AgentsPerQueue)}",
        };
        targets = _policies.For(row.Priority, row.CustomerTier);
        return row;
    }

    /// <summary>Opening time and the due times the service computes from it.</summary>
    private void Place(TicketRow row, DateTime opened, SlaTargets targets)
    {
        opened = DateTime.SpecifyKind(opened, DateTimeKind.Utc).ToMicroseconds();
        row.Id = Guid.CreateVersion7(new DateTimeOffset(opened));
        row.OpenedAt = row.UpdatedAt = opened;
        row.FrTargetMinutes = targets.FirstResponseMinutes;
        row.FrDueAt = _calendar.Add(opened, TimeSpan.FromMinutes(targets.FirstResponseMinutes));
        row.ResTargetMinutes = targets.ResolutionMinutes;
        row.ResDueAt = _calendar.Add(opened, TimeSpan.FromMinutes(targets.ResolutionMinutes));
    }

    private async Task<List<TicketRow>> WriteAsync(List<TicketRow> rows, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        await using (var writer = await connection.BeginBinaryImportAsync("""
            COPY tickets (id, customer_id, type, channel, priority, state, order_ref, subject, description, tags, attachments, queue,
                assignee, customer_tier, opened_by, opened_at, updated_at, fr_target_minutes, fr_due_at, fr_met_at, first_response_at,
                res_target_minutes, res_due_at, paused_since) FROM STDIN (FORMAT BINARY)
            """, ct))
        {
            foreach (var r in rows)
            {
                await writer.StartRowAsync(ct);
                await writer.WriteAsync(r.Id, NpgsqlDbType.Uuid, ct);
                await writer.WriteAsync(r.CustomerId, NpgsqlDbType.Uuid, ct);
                await writer.WriteAsync(r.Type, NpgsqlDbType.Integer, ct);
                await writer.WriteAsync(r.Channel, NpgsqlDbType.Integer, ct);
                await writer.WriteAsync(r.Priority, NpgsqlDbType.Integer, ct);
                await writer.WriteAsync(r.State, NpgsqlDbType.Integer, ct);
                await WriteAsync(writer, r.OrderRef, NpgsqlDbType.Text, ct);
                await writer.WriteAsync(r.Subject, NpgsqlDbType.Text, ct);
                await writer.WriteAsync(r.Description, NpgsqlDbType.Text, ct);
                await writer.WriteAsync(r.Tags, NpgsqlDbType.Array | NpgsqlDbType.Text, ct);
                await writer.WriteAsync(r.Attachments, NpgsqlDbType.Jsonb, ct);
                await WriteAsync(writer, r.Queue, NpgsqlDbType.Text, ct);
                await WriteAsync(writer, r.Assignee, NpgsqlDbType.Text, ct);
                await WriteAsync(writer, r.CustomerTier, NpgsqlDbType.Text, ct);
                await writer.WriteAsync(r.OpenedBy, NpgsqlDbType.Text, ct);
                await writer.WriteAsync(r.OpenedAt, NpgsqlDbType.TimestampTz, ct);
                await writer.WriteAsync(r.UpdatedAt, NpgsqlDbType.TimestampTz, ct);
                await writer.WriteAsync(r.FrTargetMinutes, NpgsqlDbType.Integer, ct);
                await writer.WriteAsync(r.FrDueAt, NpgsqlDbType.TimestampTz, ct);
                await WriteAsync(writer, r.FrMetAt, NpgsqlDbType.TimestampTz, ct);
                await WriteAsync(writer, r.FirstResponseAt, NpgsqlDbType.TimestampTz, ct);
                await writer.WriteAsync(r.ResTargetMinutes, NpgsqlDbType.Integer, ct);
                await WriteAsync(writer, r.ResDueAt, NpgsqlDbType.TimestampTz, ct);
                await WriteAsync(writer, r.PausedSince, NpgsqlDbType.TimestampTz, ct);
            }
            await writer.CompleteAsync(ct);
        }
        await using (var search = await connection.BeginBinaryImportAsync(
            "COPY ticket_search (ticket_id, search_text) FROM STDIN (FORMAT BINARY)", ct))
        {
            foreach (var r in rows) await search.WriteRowAsync(ct, r.Id, r.Subject + " " + r.Description);
            await search.CompleteAsync(ct);
        }
        await using (var targets = await connection.BeginBinaryImportAsync(
            "COPY sla_targets (due_at, ticket_id, target) FROM STDIN (FORMAT BINARY)", ct))
        {
            foreach (var r in rows)
            foreach (var (target, due) in RunningTargets.Of(r))
            {
                await targets.StartRowAsync(ct);
                await targets.WriteAsync(due, NpgsqlDbType.TimestampTz, ct);
                await targets.WriteAsync(r.Id, NpgsqlDbType.Uuid, ct);
                await targets.WriteAsync(target, NpgsqlDbType.Smallint, ct);
            }
            await targets.CompleteAsync(ct);
        }
        await using (var steps = await connection.BeginBinaryImportAsync(
            "COPY complaint_steps (ticket_id, step, done_by, done_at) FROM STDIN (FORMAT BINARY)", ct))
        {
            foreach (var r in rows.Where(r => r.Type == TicketTypes.Complaint))
            {
                await steps.WriteRowAsync(ct, r.Id, "receive", r.OpenedBy, r.OpenedAt);
                if (r.State is States.InProgress or States.WaitingOnCustomer)
                    await steps.WriteRowAsync(ct, r.Id, "investigate", r.Assignee!, r.FirstResponseAt!.Value);
            }
            await steps.CompleteAsync(ct);
        }
        await tx.CommitAsync(ct);
        return rows;
    }

    private static Task WriteAsync<T>(NpgsqlBinaryImporter writer, T? value, NpgsqlDbType type, CancellationToken ct) =>
        value is null ? writer.WriteNullAsync(ct) : writer.WriteAsync(value, type, ct);

    private static Task WriteAsync(NpgsqlBinaryImporter writer, DateTime? value, NpgsqlDbType type, CancellationToken ct) =>
        value is { } v ? writer.WriteAsync(v, type, ct) : writer.WriteNullAsync(ct);
}
