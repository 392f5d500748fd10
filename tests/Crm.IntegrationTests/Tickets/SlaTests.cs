using Crm.Contracts;
using Crm.IntegrationTests.Loyalty;
using Crm.IntegrationTests.Support;
using Crm.ServiceDefaults.Security;
using Crm.Tickets.V1;
using Dapper;
using Grpc.Core;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;

namespace Crm.IntegrationTests.Tickets;

[Collection(SuiteCollection.Name)]
public class SlaTests(SuiteFixture suite) : ClockedTickets(suite)
{
    /// <summary>
    /// The scenario. An S6 member (tier learned from TierChanged) calls on Friday 2027-11-26 at 17:30 Shanghai time
    /// with an urgent complaint: the S5/S6 urgent policy gives 4 business hours to resolve, so on the 9:00-18:00 Mon-Fri
    /// calendar it is due Monday 12:30 (30 minutes on Friday, 3.5 hours on Monday). It waits on the customer from Monday
    /// 9:00 until the customer answers at 11:00: due 14:30. At 13:45 it is in ListAtRisk(60 min) and not in ListAtRisk(30);
    /// at 14:29 nothing breaches; at 14:31 the breach fires, once however often the scheduler runs, and escalates it to
    /// the team's supervisor queue. A high-priority ticket of the same team left unanswered shows the priority raise.
    /// </summary>
    [Fact]
    public async Task Urgent_S6_complaint_from_Friday_17_30_is_due_Monday_12_30_then_14_30_after_a_pause_and_breaches_once_with_escalation()
    {
        Assert.Equal(DayOfWeek.Friday, new DateTime(2027, 11, 26).DayOfWeek);
        var customer = Guid.NewGuid();
        var bus = Host.Services.GetRequiredService<IBus>();
        using var consumed = new ConsumedMessages(bus);
        var newer = Guid.NewGuid();
        var stale = Guid.NewGuid();
        await bus.Publish(new TierChanged(customer, "S5", "S6", 990_000, "order", DateTimeOffset.UtcNow, Sequence: 9), c => c.MessageId = newer);
        await consumed.WaitAsync(newer, 1, "TierChanged S6");
        // A stale event (lower sequence) arriving later must not demote the customer.
        await bus.Publish(new TierChanged(customer, "S4", "S5", 600_000, "order", DateTimeOffset.UtcNow, Sequence: 5), c => c.MessageId = stale);
        await consumed.WaitAsync(stale, 1, "the stale TierChanged");

        var team = "east-" + Guid.NewGuid().ToString("N")[..8];
        var supervisor = As(Roles.ServiceSupervisor, "sup-" + team, team);
        await supervisor.UpsertQueueAsync(new UpsertQueueRequest { Name = $"{team}-desk", Team = team, AgentIds = { "agent-" + team } });
        await supervisor.UpsertQueueAsync(new UpsertQueueRequest { Name = $"{team}-supervisors", Team = team, SupervisorQueue = true });
        var agent = As(Roles.Service, "agent-" + team);

        SetLocal(2027, 11, 26, 17, 30);
        var ticket = await agent.OpenTicketAsync(new OpenTicketRequest
        {
            CustomerId = customer.ToString(), Type = TicketType.Complaint, Channel = Channel.Phone, Priority = Priority.Urgent,
            Subject = "钻戒镶嵌松动", Description = "The stone in the ring bought last month is loose.", Tags = { "setting", "quality" },
            Queue = $"{team}-desk",
        });
        Assert.Equal(("S6", 240, 15), (ticket.CustomerTier, ticket.Resolution.TargetBusinessMinutes, ticket.FirstResponse.TargetBusinessMinutes));
        Assert.Equal(Local(2027, 11, 29, 12, 30), ticket.Resolution.DueAt.ToDateTime());
        Assert.Equal(Local(2027, 11, 26, 17, 45), ticket.FirstResponse.DueAt.ToDateTime());
        var unanswered = await agent.OpenTicketAsync(new OpenTicketRequest
        {
            CustomerId = Guid.NewGuid().ToString(), Type = TicketType.Inquiry, Channel = Channel.Phone, Priority = Priority.High,
            Subject = "Resizing time?", Queue = $"{team}-desk",
        });
        Assert.Equal(Local(2027, 11, 29, 9, 30), unanswered.FirstResponse.DueAt.ToDateTime()); // 30 min Friday + 30 min Monday

        SetLocal(2027, 11, 26, 17, 35);
        ticket = await agent.ChangeStateAsync(new ChangeStateRequest { TicketId = ticket.Id, State = TicketState.Acknowledged });
        Assert.NotNull(ticket.FirstResponse.MetAt);

        SetLocal(2027, 11, 29, 9, 0);
        await agent.ChangeStateAsync(new ChangeStateRequest { TicketId = ticket.Id, State = TicketState.InProgress });
        ticket = await agent.ChangeStateAsync(new ChangeStateRequest { TicketId = ticket.Id, State = TicketState.WaitingOnCustomer });
        Assert.True(ticket.Resolution.Paused);
        Assert.Null(ticket.Resolution.DueAt);

        // 12:30 passes while waiting: no breach.
        SetLocal(2027, 11, 29, 10, 59);
        await RunSchedulerAsync();
        Assert.Equal(0, await OutboxCountAsync("SlaBreached", ticket.Id));

        // The customer answers at 11:00 (the member app): the clock runs again, two business hours later than before.
        SetLocal(2027, 11, 29, 11, 0);
        ticket = await As(Roles.Member, customer.ToString()).AddCommentAsync(new AddCommentRequest { TicketId = ticket.Id, Body = "照片已上传。" });
        Assert.Equal(TicketState.InProgress, ticket.State);
        Assert.Equal(Local(2027, 11, 29, 14, 30), ticket.Resolution.DueAt.ToDateTime());
        Assert.Equal(["receive", "investigate"], ticket.ComplaintSteps.Select(s => s.Step));

        SetLocal(2027, 11, 29, 13, 45);
        var within60 = await agent.ListAtRiskAsync(new ListAtRiskRequest { WithinMinutes = 60, PageSize = 200 });
        var atRisk = Assert.Single(within60.Tickets, t => t.TicketId == ticket.Id);
        Assert.Equal(("resolution", Local(2027, 11, 29, 14, 30)), (atRisk.Target, atRisk.DueAt.ToDateTime()));
        var within30 = await agent.ListAtRiskAsync(new ListAtRiskRequest { WithinMinutes = 30, PageSize = 200 });
        Assert.DoesNotContain(within30.Tickets, t => t.TicketId == ticket.Id);
        var deskQueue = await agent.ListAtRiskAsync(new ListAtRiskRequest { WithinMinutes = 60, Queue = $"{team}-desk" });
        Assert.Equal([ticket.Id], deskQueue.Tickets.Select(t => t.TicketId)); // the other one already breached and left the desk
        Assert.Empty((await agent.ListAtRiskAsync(new ListAtRiskRequest { WithinMinutes = 60, Queue = $"{team}-supervisors" })).Tickets);

        SetLocal(2027, 11, 29, 14, 29);
        await RunSchedulerAsync();
        Assert.Equal(0, await OutboxCountAsync("SlaBreached", ticket.Id));
        // The unanswered high-priority ticket breached its first response at 9:30: raised to urgent, to the supervisors.
        var escalatedHigh = await Admin.GetTicketAsync(new GetTicketRequest { Id = unanswered.Id });
        Assert.Equal((Priority.Urgent, $"{team}-supervisors", true), (escalatedHigh.Priority, escalatedHigh.Queue, escalatedHigh.Escalated));
        Assert.Equal(1, await OutboxCountAsync("SlaBreached", unanswered.Id));

        var position = await Markers.PositionAsync(Db);
        SetLocal(2027, 11, 29, 14, 31);
        await Task.WhenAll(RunSchedulerAsync(), RunSchedulerAsync()); // two passes at once (two instances)
        await RunSchedulerAsync();
        Assert.Equal(1, await OutboxCountAsync("SlaBreached", ticket.Id));
        await Markers.DrainAsync(Db, position); // and it was published
        await using (var connection = await Db.OpenConnectionAsync())
        {
            var payload = await connection.ExecuteScalarAsync<string>(
                "SELECT payload::text FROM change_events WHERE event_type = 'SlaBreached' AND payload->>'ticketId' = @id",
                new { id = ticket.Id });
            using var json = System.Text.Json.JsonDocument.Parse(payload!);
            Assert.Equal("resolution", json.RootElement.GetProperty("target").GetString());
            Assert.Equal(Local(2027, 11, 29, 14, 30), json.RootElement.GetProperty("dueAt").GetDateTimeOffset().UtcDateTime);
        }

        ticket = await Admin.GetTicketAsync(new GetTicketRequest { Id = ticket.Id });
        Assert.Equal((Priority.Urgent, $"{team}-supervisors", true), (ticket.Priority, ticket.Queue, ticket.Escalated));
        Assert.Equal(Local(2027, 11, 29, 14, 31), ticket.Resolution.BreachedAt.ToDateTime());
        // Breached targets are past risk: no longer listed.
        Assert.DoesNotContain((await agent.ListAtRiskAsync(new ListAtRiskRequest { WithinMinutes = 600, PageSize = 200 })).Tickets,
            t => t.TicketId == ticket.Id);
        // The desk agent lost it to the supervisors' queue; the supervisor of the team works it.
        await Rpc.FailsWith(StatusCode.PermissionDenied,
            () => agent.ChangeStateAsync(new ChangeStateRequest { TicketId = ticket.Id, State = TicketState.Resolved }).ResponseAsync);
        ticket = await supervisor.ChangeStateAsync(new ChangeStateRequest { TicketId = ticket.Id, State = TicketState.Resolved });
        Assert.Null(ticket.Resolution.MetAt);
        Assert.Equal(["receive", "investigate", "resolve"], ticket.ComplaintSteps.Select(s => s.Step));
        Assert.True(ticket.Survey.Pending);
    }
}
