using System.Text.Json;
using Crm.IntegrationTests.Support;
using Crm.ServiceDefaults.Security;
using Crm.Tickets.V1;
using Dapper;
using Grpc.Core;

namespace Crm.IntegrationTests.Tickets;

[Collection(SuiteCollection.Name)]
public class OpenAndBreachTests(SuiteFixture suite) : ClockedTickets(suite)
{
    /// <summary>
    /// OpenTicket answers with the ticket it wrote (no read-back): it must be exactly what GetTicket reads afterwards. A retry
    /// with the same idempotency key returns the same ticket and writes no second TicketOpened; the key used for another
    /// customer is ALREADY_EXISTS; an unknown queue is NOT_FOUND.
    /// </summary>
    [Fact]
    public async Task OpenTicket_returns_what_GetTicket_reads_and_a_retry_with_the_same_key_opens_nothing_new()
    {
        var team = "open-" + Guid.NewGuid().ToString("N")[..8];
        await As(Roles.ServiceSupervisor, "sup-" + team, team).UpsertQueueAsync(new UpsertQueueRequest { Name = $"{team}-desk", Team = team });
        var agent = As(Roles.Service, "agent-" + team);
        var customer = Guid.NewGuid().ToString();
        var key = "open-" + Guid.NewGuid().ToString("N");
        SetLocal(2028, 1, 3, 11, 0); // a Monday
        var request = new OpenTicketRequest
        {
            CustomerId = customer, Type = TicketType.Complaint, Channel = Channel.Store, Priority = Priority.High, OrderRef = "SO-2028-000017",
            Subject = "项链扣坏了", Description = "The clasp broke after two days.", Tags = { "quality", "clasp" }, Queue = $"{team}-desk",
            Attachments = { new Attachment { Uri = "s3://crm-uploads/clasp.jpg", Name = "clasp.jpg", ContentType = "image/jpeg" } },
            IdempotencyKey = key,
        };
        var opened = await agent.OpenTicketAsync(request);
        Assert.Equal(("receive", "agent-" + team), (Assert.Single(opened.ComplaintSteps).Step, opened.ComplaintSteps[0].By));
        Assert.Equal(Local(2028, 1, 3, 11, 0), opened.OpenedAt.ToDateTime());
        Assert.Equal(Local(2028, 1, 3, 12, 0), opened.FirstResponse.DueAt.ToDateTime()); // high: 60 business minutes
        Assert.Equal(opened, await Admin.GetTicketAsync(new GetTicketRequest { Id = opened.Id }));

        SetLocal(2028, 1, 3, 11, 5);
        var retried = await agent.OpenTicketAsync(request);
        Assert.Equal(opened, retried);
        Assert.Equal(1, await OutboxCountAsync("TicketOpened", opened.Id));

        request.CustomerId = Guid.NewGuid().ToString();
        await Rpc.FailsWith(StatusCode.AlreadyExists, () => agent.OpenTicketAsync(request).ResponseAsync);
        request.IdempotencyKey = "";
        request.Queue = "no-such-queue-" + team;
        await Rpc.FailsWith(StatusCode.NotFound, () => agent.OpenTicketAsync(request).ResponseAsync);

        // The audit row is written with the ticket (same round trip): one for the open, none for the retry or the refusals.
        await using var connection = await Db.OpenConnectionAsync();
        Assert.Equal([(opened.Id, key, "OK")], (await connection.QueryAsync<(string, string, string)>(
            "SELECT target_id, idempotency_key, outcome FROM audit_events WHERE rpc LIKE '%/OpenTicket' AND subject = @subject",
            new { subject = "agent-" + team })).ToList());
    }

    /// <summary>
    /// TicketOpened and SlaBreached are built in SQL (the tier merged in, instants formatted there): each must be the
    /// JSON System.Text.Json writes for the same record, to the microsecond fraction, with the same copy in the change
    /// feed under the ticket's customer.
    /// </summary>
    [Fact]
    public async Task Events_built_in_SQL_are_the_JSON_the_records_serialize_to_and_reach_the_change_feed()
    {
        var customer = Guid.NewGuid();
        await using var connection = await Db.OpenConnectionAsync();
        await connection.ExecuteAsync("INSERT INTO customer_tiers (customer_id, tier, sequence, changed_at) VALUES (@customer, 'S5', 1, now())",
            new { customer });
        var openedAt = new DateTimeOffset(2028, 1, 4, 10, 0, 0, Shanghai).AddTicks(1_234_500); // a Tuesday, 10:00:00.12345
        Clock.SetUtcNow(openedAt);
        var ticket = await Admin.OpenTicketAsync(new OpenTicketRequest
        {
            CustomerId = customer.ToString(), Type = TicketType.Inquiry, Channel = Channel.App, Priority = Priority.Urgent,
            Subject = "Engraving spelled wrong", Tags = { "engraving" },
        });
        var id = Guid.Parse(ticket.Id);
        var due = ticket.FirstResponse.DueAt.ToDateTime();
        Assert.Equal(1_234_500, due.Ticks % TimeSpan.TicksPerSecond); // the fraction carried into the due time
        Clock.SetUtcNow(new DateTimeOffset(due).AddMinutes(1));
        var detected = Clock.GetUtcNow().ToUniversalTime();
        await RunSchedulerAsync(); // QuerySingle below: exactly one SlaBreached for the ticket

        object[] expected =
        [
            new Crm.Contracts.TicketOpened(id, customer, "inquiry", "app", "urgent", null, ["engraving"], "S5", openedAt.ToUniversalTime()),
            new Crm.Contracts.SlaBreached(id, customer, "first_response", new DateTimeOffset(due, TimeSpan.Zero), detected, "urgent", "supervisors"),
        ];
        foreach (var e in expected)
        {
            var json = JsonSerializer.Serialize(e, e.GetType(), new JsonSerializerOptions(JsonSerializerDefaults.Web));
            var (feed, feedCustomer) = await connection.QuerySingleAsync<(bool, Guid)>("""
                SELECT c.payload = @json::jsonb, c.customer_id FROM change_events c
                WHERE c.event_type = @type AND c.payload->>'ticketId' = @ticketId
                """, new { json, type = e.GetType().Name, ticketId = ticket.Id });
            Assert.Equal((true, customer), (feed, feedCustomer));
        }
    }

    /// <summary>
    /// One pass breaches every overdue target once, each breach one priority step up: a low inquiry that missed both its
    /// first response (8 business hours) and its resolution (45) goes to high, a normal one (4 / 27) to urgent; the team's
    /// ticket moves to the team's supervisor queue, the one without a queue to Tickets:SupervisorQueue ("supervisors").
    /// Each SlaBreached carries the priority and queue after its own step; a second pass writes nothing.
    /// </summary>
    [Fact]
    public async Task A_pass_breaching_both_targets_raises_the_priority_one_step_per_breach_and_writes_one_event_each()
    {
        var team = "breach-" + Guid.NewGuid().ToString("N")[..8];
        var supervisor = As(Roles.ServiceSupervisor, "sup-" + team, team);
        await supervisor.UpsertQueueAsync(new UpsertQueueRequest { Name = $"{team}-desk", Team = team });
        await supervisor.UpsertQueueAsync(new UpsertQueueRequest { Name = $"{team}-supervisors", Team = team, SupervisorQueue = true });
        var agent = As(Roles.Service, "agent-" + team);
        SetLocal(2028, 1, 10, 10, 0); // a Monday
        var low = await agent.OpenTicketAsync(new OpenTicketRequest
        {
            CustomerId = Guid.NewGuid().ToString(), Type = TicketType.Inquiry, Channel = Channel.Phone, Priority = Priority.Low,
            Subject = "Opening hours on holidays?", Queue = $"{team}-desk",
        });
        var normal = await Admin.OpenTicketAsync(new OpenTicketRequest
        {
            CustomerId = Guid.NewGuid().ToString(), Type = TicketType.Suggestion, Channel = Channel.Social, Priority = Priority.Normal,
            Subject = "请增加线上试戴",
        });
        Assert.Equal(Local(2028, 1, 10, 18, 0), low.FirstResponse.DueAt.ToDateTime());
        Assert.Equal(Local(2028, 1, 17, 10, 0), low.Resolution.DueAt.ToDateTime());
        Assert.Equal(Local(2028, 1, 10, 14, 0), normal.FirstResponse.DueAt.ToDateTime());
        Assert.Equal(Local(2028, 1, 13, 10, 0), normal.Resolution.DueAt.ToDateTime());

        SetLocal(2028, 1, 20, 9, 30);
        await RunSchedulerAsync();
        await RunSchedulerAsync();

        var lowNow = await Admin.GetTicketAsync(new GetTicketRequest { Id = low.Id });
        Assert.Equal((Priority.High, $"{team}-supervisors", true), (lowNow.Priority, lowNow.Queue, lowNow.Escalated));
        Assert.Equal(Local(2028, 1, 20, 9, 30), lowNow.FirstResponse.BreachedAt.ToDateTime());
        Assert.Equal(Local(2028, 1, 20, 9, 30), lowNow.Resolution.BreachedAt.ToDateTime());
        var normalNow = await Admin.GetTicketAsync(new GetTicketRequest { Id = normal.Id });
        Assert.Equal((Priority.Urgent, "supervisors", true), (normalNow.Priority, normalNow.Queue, normalNow.Escalated));

        Assert.Equal(
            [("first_response", "normal", $"{team}-supervisors", Local(2028, 1, 10, 18, 0)), ("resolution", "high", $"{team}-supervisors", Local(2028, 1, 17, 10, 0))],
            await BreachesAsync(low.Id));
        Assert.Equal(
            [("first_response", "high", "supervisors", Local(2028, 1, 10, 14, 0)), ("resolution", "urgent", "supervisors", Local(2028, 1, 13, 10, 0))],
            await BreachesAsync(normal.Id));
    }

    private async Task<List<(string Target, string Priority, string Queue, DateTime Due)>> BreachesAsync(string ticketId)
    {
        await using var connection = await Db.OpenConnectionAsync();
        var payloads = await connection.QueryAsync<string>(
            "SELECT payload::text FROM change_events WHERE event_type = 'SlaBreached' AND payload->>'ticketId' = @ticketId ORDER BY tx, id",
            new { ticketId });
        return payloads.Select(p =>
        {
            var e = JsonDocument.Parse(p).RootElement;
            return (e.GetProperty("target").GetString()!, e.GetProperty("newPriority").GetString()!, e.GetProperty("escalatedTo").GetString()!,
                e.GetProperty("dueAt").GetDateTimeOffset().UtcDateTime);
        }).ToList();
    }
}
