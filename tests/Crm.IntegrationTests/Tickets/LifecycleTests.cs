using Crm.IntegrationTests.Support;
using Crm.ServiceDefaults.Security;
using Crm.Tickets.V1;
using Dapper;
using Grpc.Core;

namespace Crm.IntegrationTests.Tickets;

[Collection(SuiteCollection.Name)]
public class LifecycleTests(SuiteFixture suite) : ClockedTickets(suite)
{
    /// <summary>
    /// Every move outside new → acknowledged → in progress ⇄ waiting → resolved → closed is FAILED_PRECONDITION
    /// ILLEGAL_TRANSITION; the survey opens on resolution and takes one answer (the second is ALREADY_EXISTS); a reopen
    /// within the 7-day window works, one 8 days after the resolution is FAILED_PRECONDITION REOPEN_WINDOW_PASSED.
    /// </summary>
    [Fact]
    public async Task Illegal_moves_a_second_survey_answer_and_a_reopen_after_the_window_get_precise_codes()
    {
        var customer = Guid.NewGuid().ToString();
        var member = As(Roles.Member, customer);
        SetLocal(2027, 12, 6, 10, 0); // a Monday
        var ticket = await member.OpenTicketAsync(new OpenTicketRequest
        {
            CustomerId = customer, Type = TicketType.AfterSales, Channel = Channel.App, Priority = Priority.Urgent,
            Subject = "Resize my ring", Description = "From size 12 to 13.",
            Attachments = { new Attachment { Uri = "s3://crm-uploads/ring.jpg", Name = "ring.jpg", ContentType = "image/jpeg" } },
        });
        Assert.Equal((TicketState.New, Priority.Normal), (ticket.State, ticket.Priority)); // members cannot pick urgent
        Assert.Equal("s3://crm-uploads/ring.jpg", Assert.Single(ticket.Attachments).Uri);
        var agent = As(Roles.Service, "agent-lifecycle");

        async Task Illegal(TicketState to, string type = "ILLEGAL_TRANSITION")
        {
            var ex = await Rpc.FailsWith(StatusCode.FailedPrecondition,
                () => agent.ChangeStateAsync(new ChangeStateRequest { TicketId = ticket.Id, State = to }).ResponseAsync);
            Assert.Equal(type, PreconditionType(ex));
        }

        await Illegal(TicketState.Resolved);
        await Illegal(TicketState.InProgress);
        await Illegal(TicketState.Closed);
        // No survey before resolution.
        var early = await Rpc.FailsWith(StatusCode.FailedPrecondition,
            () => member.AnswerSurveyAsync(new AnswerSurveyRequest { TicketId = ticket.Id, Score = 5 }).ResponseAsync);
        Assert.Equal("NOT_RESOLVED", PreconditionType(early));
        // Members cannot move tickets at all.
        await Rpc.FailsWith(StatusCode.PermissionDenied,
            () => member.ChangeStateAsync(new ChangeStateRequest { TicketId = ticket.Id, State = TicketState.Acknowledged }).ResponseAsync);

        await agent.ChangeStateAsync(new ChangeStateRequest { TicketId = ticket.Id, State = TicketState.Acknowledged });
        await Illegal(TicketState.WaitingOnCustomer);
        await Illegal(TicketState.New);
        await agent.ChangeStateAsync(new ChangeStateRequest { TicketId = ticket.Id, State = TicketState.InProgress });
        SetLocal(2027, 12, 7, 10, 0);
        ticket = await agent.ChangeStateAsync(new ChangeStateRequest { TicketId = ticket.Id, State = TicketState.Resolved });
        Assert.NotNull(ticket.Resolution.MetAt);
        await Illegal(TicketState.InProgress); // reopening is ReopenTicket's
        await Illegal(TicketState.WaitingOnCustomer);

        var bad = await Rpc.FailsWith(StatusCode.InvalidArgument,
            () => member.AnswerSurveyAsync(new AnswerSurveyRequest { TicketId = ticket.Id, Score = 6 }).ResponseAsync);
        Assert.Equal(["score"], bad.Fields());
        ticket = await member.AnswerSurveyAsync(new AnswerSurveyRequest { TicketId = ticket.Id, Score = 4, Comment = "快，谢谢" });
        Assert.Equal((4, false), (ticket.Survey.Score, ticket.Survey.Pending));
        var twice = await Rpc.FailsWith(StatusCode.AlreadyExists,
            () => member.AnswerSurveyAsync(new AnswerSurveyRequest { TicketId = ticket.Id, Score = 1 }).ResponseAsync);
        Assert.Equal("survey", twice.Resource()?.ResourceType);
        Assert.Equal(4, (await member.GetTicketAsync(new GetTicketRequest { Id = ticket.Id })).Survey.Score);
        // Someone else's survey: denied, whether or not it exists.
        await Rpc.FailsWith(StatusCode.PermissionDenied,
            () => As(Roles.Member, Guid.NewGuid().ToString()).AnswerSurveyAsync(new AnswerSurveyRequest { TicketId = ticket.Id, Score = 1 }).ResponseAsync);

        // Reopened by the member 6 days later: back in progress, with the time it was resolved not counted.
        SetLocal(2027, 12, 13, 10, 0);
        ticket = await member.ReopenTicketAsync(new ReopenTicketRequest { TicketId = ticket.Id, Reason = "Still too tight" });
        Assert.Equal(TicketState.InProgress, ticket.State);
        Assert.Null(ticket.Resolution.MetAt);
        Assert.Equal("Reopened: Still too tight", ticket.Comments.Last().Body);
        ticket = await agent.ChangeStateAsync(new ChangeStateRequest { TicketId = ticket.Id, State = TicketState.Resolved });
        ticket = await agent.ChangeStateAsync(new ChangeStateRequest { TicketId = ticket.Id, State = TicketState.Closed });
        await Illegal(TicketState.Resolved);

        // Resolved 2027-12-13 10:00; 7 days and 1 minute later the window has passed.
        SetLocal(2027, 12, 20, 10, 1);
        var late = await Rpc.FailsWith(StatusCode.FailedPrecondition,
            () => member.ReopenTicketAsync(new ReopenTicketRequest { TicketId = ticket.Id }).ResponseAsync);
        Assert.Equal("REOPEN_WINDOW_PASSED", PreconditionType(late));
        Assert.Equal(TicketState.Closed, (await Admin.GetTicketAsync(new GetTicketRequest { Id = ticket.Id })).State);

        var open = await agent.OpenTicketAsync(new OpenTicketRequest
        {
            CustomerId = customer, Type = TicketType.Inquiry, Channel = Channel.Phone, Subject = "Opening hours",
        });
        var notResolved = await Rpc.FailsWith(StatusCode.FailedPrecondition,
            () => agent.ReopenTicketAsync(new ReopenTicketRequest { TicketId = open.Id }).ResponseAsync);
        Assert.Equal("ILLEGAL_TRANSITION", PreconditionType(notResolved));
    }

    /// <summary>
    /// ChangeState names the state to be in: asking for the state the ticket is in (a retry after a lost answer, a second
    /// agent) answers the ticket as it is, with no second TicketResolved, no second complaint step and updated_at kept.
    /// </summary>
    [Fact]
    public async Task Moving_a_ticket_to_the_state_it_is_in_answers_it_unchanged_without_a_second_event()
    {
        var customer = Guid.NewGuid().ToString();
        var agent = As(Roles.Service, "agent-same-state");
        SetLocal(2027, 12, 8, 10, 0); // a Wednesday
        var ticket = await agent.OpenTicketAsync(new OpenTicketRequest
        {
            CustomerId = customer, Type = TicketType.Complaint, Channel = Channel.Store, Priority = Priority.High,
            Subject = "项链扣坏了", Description = "The clasp broke after two days.",
        });
        SetLocal(2027, 12, 8, 10, 5);
        var fresh = await agent.ChangeStateAsync(new ChangeStateRequest { TicketId = ticket.Id, State = TicketState.New });
        Assert.Equal((TicketState.New, Local(2027, 12, 8, 10, 0)), (fresh.State, await UpdatedAtAsync()));

        await agent.ChangeStateAsync(new ChangeStateRequest { TicketId = ticket.Id, State = TicketState.Acknowledged });
        await agent.ChangeStateAsync(new ChangeStateRequest { TicketId = ticket.Id, State = TicketState.InProgress });
        SetLocal(2027, 12, 8, 11, 0);
        var resolved = await agent.ChangeStateAsync(new ChangeStateRequest { TicketId = ticket.Id, State = TicketState.Resolved });
        Assert.Equal(1, await OutboxCountAsync("TicketResolved", ticket.Id));

        SetLocal(2027, 12, 8, 11, 30);
        var again = await agent.ChangeStateAsync(new ChangeStateRequest { TicketId = ticket.Id, State = TicketState.Resolved });
        Assert.Equal((TicketState.Resolved, resolved.ResolvedAt, resolved.Resolution.MetAt), (again.State, again.ResolvedAt, again.Resolution.MetAt));
        Assert.Equal(Local(2027, 12, 8, 11, 0), await UpdatedAtAsync());
        Assert.Equal(resolved.ComplaintSteps.Select(s => (s.Step, s.At)), again.ComplaintSteps.Select(s => (s.Step, s.At)));
        Assert.Equal(1, await OutboxCountAsync("TicketResolved", ticket.Id));
        await using (var connection = await Db.OpenConnectionAsync())
            Assert.Equal(["OK", "REPLAYED"], (await connection.QueryAsync<string>(
                "SELECT outcome FROM audit_events WHERE target_id = @id AND rpc LIKE '%ChangeState' AND subject = 'agent-same-state' AND outcome IN ('OK', 'REPLAYED') ORDER BY id DESC LIMIT 2",
                new { id = ticket.Id })).Reverse());

        // Someone who may not work the ticket still gets PERMISSION_DENIED, not the ticket.
        await Rpc.FailsWith(StatusCode.PermissionDenied,
            () => As(Roles.Member, Guid.NewGuid().ToString()).ChangeStateAsync(new ChangeStateRequest { TicketId = ticket.Id, State = TicketState.Resolved }).ResponseAsync);
        async Task<DateTime> UpdatedAtAsync()
        {
            await using var connection = await Db.OpenConnectionAsync();
            return DateTime.SpecifyKind(await connection.QuerySingleAsync<DateTime>("SELECT updated_at FROM tickets WHERE id = @id", new { id = Guid.Parse(ticket.Id) }), DateTimeKind.Utc);
        }
    }
}
