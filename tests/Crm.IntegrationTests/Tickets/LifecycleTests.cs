using Crm.IntegrationTests.Support;
using Crm.ServiceDefaults.Security;
using Crm.Tickets.V1;
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
        await Illegal(TicketState.New);
        // No survey before resolution.
        var early = await Rpc.FailsWith(StatusCode.FailedPrecondition,
            () => member.AnswerSurveyAsync(new AnswerSurveyRequest { TicketId = ticket.Id, Score = 5 }).ResponseAsync);
        Assert.Equal("NOT_RESOLVED", PreconditionType(early));
        // Members cannot move tickets at all.
        await Rpc.FailsWith(StatusCode.PermissionDenied,
            () => member.ChangeStateAsync(new ChangeStateRequest { TicketId = ticket.Id, State = TicketState.Acknowledged }).ResponseAsync);

        await agent.ChangeStateAsync(new ChangeStateRequest { TicketId = ticket.Id, State = TicketState.Acknowledged });
        await Illegal(TicketState.WaitingOnCustomer);
        await Illegal(TicketState.Acknowledged);
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
}
