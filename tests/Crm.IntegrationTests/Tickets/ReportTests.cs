using Crm.IntegrationTests.Support;
using Crm.ServiceDefaults.Security;
using Crm.Tickets.V1;
using Google.Protobuf.WellKnownTypes;

namespace Crm.IntegrationTests.Tickets;

[Collection(SuiteCollection.Name)]
public class ReportTests(SuiteFixture suite) : ClockedTickets(suite)
{
    /// <summary>
    /// A hand-computed fixture, Monday 2027-11-29 (Shanghai), normal priority, no tier (first response 240, resolution
    /// 1,620 business minutes). Agent X gets T1-T4 at 9:00, agent Y gets T6.
    /// 9:10  T1 and T2 acknowledged and resolved (both targets met), surveys 5 and 3; T4 acknowledged (met).
    /// 13:01 the scheduler breaches the first response of T3 and T6 (due 13:00) and raises them to high.
    /// 13:05 T3 acknowledged (already breached) and resolved (resolution met).
    /// 14:30 T5 for X, after the report window (Monday 0:00-14:00), does not count.
    /// X: handled 4, resolved 3, 2 surveys averaging 4.0, targets met 2+2+1+1 = 6, breached 1 → 85.71 %.
    /// Reviews of X for 2027-11: (4,5,3,4,5,4) replacing the same reviewer's (1,...), and (2,3,3,4,5,4) by another
    /// supervisor → 3, 4, 3, 4, 5, 4, overall 23/6 = 3.83; reviews for 2027-10 and 2027-12 are outside the window.
    /// The whole desk (T1-T4, T6): 5 opened; complaint 3, inquiry 1, return_exchange 1; phone 4, store 1; normal 3, high 2;
    /// median first response 10 min of (10, 10, 10, 245), median resolution 10 of (10, 10, 245); met 6, breached 2 → 75 %;
    /// top complaint tags clasp 2, delay 1, engraving 1.
    /// </summary>
    [Fact]
    public async Task Agent_and_desk_reports_match_a_hand_computed_fixture()
    {
        var x = "agent-x-" + Guid.NewGuid().ToString("N")[..8];
        var y = "agent-y-" + Guid.NewGuid().ToString("N")[..8];
        var agentX = As(Roles.Service, x);
        var agentY = As(Roles.Service, y);
        var members = Enumerable.Range(0, 6).Select(_ => Guid.NewGuid().ToString()).ToArray();

        SetLocal(2027, 11, 29, 9, 0);
        async Task<string> Open(int i, TicketType type, Channel channel, string agent, params string[] tags)
        {
            var t = await Admin.OpenTicketAsync(new OpenTicketRequest
            {
                CustomerId = members[i], Type = type, Channel = channel, Subject = $"T{i + 1}", Tags = { tags },
            });
            await Admin.AssignTicketAsync(new AssignTicketRequest { TicketId = t.Id, AgentId = agent });
            return t.Id;
        }
        var t1 = await Open(0, TicketType.Complaint, Channel.Phone, x, "clasp", "delay");
        var t2 = await Open(1, TicketType.Complaint, Channel.Phone, x, "clasp");
        var t3 = await Open(2, TicketType.Inquiry, Channel.Phone, x, "clasp");
        var t4 = await Open(3, TicketType.ReturnExchange, Channel.Store, x);
        await Open(5, TicketType.Complaint, Channel.Phone, y, "engraving");

        async Task Move(TicketService.TicketServiceClient who, string id, params TicketState[] states)
        {
            foreach (var s in states) await who.ChangeStateAsync(new ChangeStateRequest { TicketId = id, State = s });
        }
        SetLocal(2027, 11, 29, 9, 10);
        await Move(agentX, t1, TicketState.Acknowledged, TicketState.InProgress, TicketState.Resolved);
        await Move(agentX, t2, TicketState.Acknowledged, TicketState.InProgress, TicketState.Resolved);
        await Move(agentX, t4, TicketState.Acknowledged);
        await As(Roles.Member, members[0]).AnswerSurveyAsync(new AnswerSurveyRequest { TicketId = t1, Score = 5 });
        await As(Roles.Member, members[1]).AnswerSurveyAsync(new AnswerSurveyRequest { TicketId = t2, Score = 3 });

        SetLocal(2027, 11, 29, 13, 1);
        await RunSchedulerAsync();
        SetLocal(2027, 11, 29, 13, 5);
        await Move(agentX, t3, TicketState.Acknowledged, TicketState.InProgress, TicketState.Resolved);

        SetLocal(2027, 11, 29, 14, 30);
        await Open(4, TicketType.Inquiry, Channel.Phone, x);

        var supervisor = As(Roles.ServiceSupervisor, "sup-1", "east");
        async Task Review(TicketService.TicketServiceClient who, string period, params int[] s) =>
            await who.ReviewAgentAsync(new ReviewAgentRequest
            {
                AgentId = x, Period = period, Comment = "Monthly review",
                Scores = new QualityScores { Confidence = s[0], Warmth = s[1], Attentiveness = s[2], Patience = s[3], Sincerity = s[4], Care = s[5] },
            });
        await Review(supervisor, "2027-11", 1, 1, 1, 1, 1, 1);
        await Review(supervisor, "2027-11", 4, 5, 3, 4, 5, 4);
        await Review(As(Roles.ServiceSupervisor, "sup-2", "east"), "2027-11", 2, 3, 3, 4, 5, 4);
        await Review(supervisor, "2027-10", 1, 1, 1, 1, 1, 1);
        await Review(supervisor, "2027-12", 1, 1, 1, 1, 1, 1);

        var from = Timestamp.FromDateTime(Local(2027, 11, 29, 0, 0));
        var to = Timestamp.FromDateTime(Local(2027, 11, 29, 14, 0));
        var report = await supervisor.GetAgentReportAsync(new GetAgentReportRequest { AgentId = x, From = from, To = to });
        Assert.Equal((4, 3, 2, 4.0), (report.TicketsHandled, report.TicketsResolved, report.SurveysAnswered, report.CsatAverage));
        Assert.Equal((6, 1, 85.71), (report.SlaTargetsMet, report.SlaTargetsBreached, report.SlaCompliancePercent));
        Assert.Equal(2, report.ReviewCount);
        var q = report.ReviewScores;
        Assert.Equal([3.0, 4.0, 3.0, 4.0, 5.0, 4.0, 3.83], [q.Confidence, q.Warmth, q.Attentiveness, q.Patience, q.Sincerity, q.Care, q.Overall]);

        var desk = await supervisor.GetServiceReportAsync(new GetServiceReportRequest { From = from, To = to });
        Assert.Equal(5, desk.TicketsOpened);
        Assert.Equal("complaint 3, inquiry 1, return_exchange 1", Counts(desk.ByType));
        Assert.Equal("phone 4, store 1", Counts(desk.ByChannel));
        Assert.Equal("normal 3, high 2", Counts(desk.ByPriority));
        Assert.Equal((10.0, 10.0), (desk.MedianFirstResponseMinutes, desk.MedianResolutionMinutes));
        Assert.Equal((75.0, 4.0, 2), (desk.SlaCompliancePercent, desk.CsatAverage, desk.SurveysAnswered));
        Assert.Equal("clasp 2, delay 1, engraving 1", Counts(desk.TopComplaintTags));

        // The desk agent's screen: the customer's history with state, CSAT and SLA outcome.
        var history = await agentY.ListCustomerHistoryAsync(new ListCustomerHistoryRequest { CustomerId = members[0] });
        var row = Assert.Single(history.Tickets);
        Assert.Equal((TicketState.Resolved, 5, "met"), (row.State, row.Csat, row.SlaOutcome));
        Assert.Equal("breached", Assert.Single((await agentY.ListCustomerHistoryAsync(new ListCustomerHistoryRequest { CustomerId = members[2] })).Tickets).SlaOutcome);
    }

    private static string Counts(IEnumerable<Count> counts) => string.Join(", ", counts.Select(c => $"{c.Key} {c.Count_}"));
}
