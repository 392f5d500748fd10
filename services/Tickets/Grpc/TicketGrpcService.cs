using System.Globalization;
using System.Text.RegularExpressions;
using Crm.ServiceDefaults.Errors;
using Crm.ServiceDefaults.Paging;
using Crm.ServiceDefaults.Security;
using Crm.Tickets.Domain;
using Crm.Tickets.V1;
using Grpc.Core;

namespace Crm.Tickets.Grpc;

/// <summary>crm.tickets.v1.TicketService. Who may call what is declared on each method; ticket-level rules live in TicketStore.</summary>
public sealed partial class TicketGrpcService(TicketStore store, TicketQueries queries) : TicketService.TicketServiceBase
{
    [Allow(Roles.Service, Roles.ServiceSupervisor, Roles.Store, Roles.Member)]
    public override async Task<Ticket> OpenTicket(OpenTicketRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var customerId = Ids.Parse(request.CustomerId, "customer_id", v);
        v.Require(request.Type != TicketType.Unspecified, "type", "is required.");
        v.Require(request.Channel != V1.Channel.Unspecified, "channel", "is required.");
        var subject = request.Subject.Trim();
        v.Require(subject.Length > 0, "subject", "is required.");
        var tags = Tags(request.Tags, "tags", v);
        var attachments = Attachments(request.Attachments, "attachments", v);
        var caller = context.Caller();
        if (caller.IsMemberOnly)
        {
            v.Require(request.Type != TicketType.CareCall, "type", "care calls are opened by the service desk.");
            v.Require(request.Queue.Length == 0, "queue", "the service desk routes members' tickets.");
        }
        v.ThrowIfInvalid();
        context.RequireSelf(customerId);

        // A member's ticket starts at normal priority; the desk raises it if needed.
        var priority = caller.IsMemberOnly || request.Priority == Priority.Unspecified ? Priorities.Normal : (int)request.Priority;
        var view = await store.OpenAsync(new NewTicket(customerId, (int)request.Type, (int)request.Channel, priority, Opt(request.OrderRef),
            subject, request.Description.Trim(), tags, attachments, Opt(request.Queue), Opt(request.IdempotencyKey)), caller, context.CancellationToken);
        return Wire.ToProto(view);
    }

    [Allow(Roles.Service, Roles.ServiceSupervisor, Roles.Member)]
    public override Task<Ticket> GetTicket(GetTicketRequest request, ServerCallContext context) =>
        ViewAsync(Ids.Parse(request.Id, "id"), context);

    [Allow(Roles.Service, Roles.ServiceSupervisor, Roles.Member)]
    public override async Task<Ticket> AddComment(AddCommentRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var id = Ids.Parse(request.TicketId, "ticket_id", v);
        var body = request.Body.Trim();
        v.Require(body.Length > 0, "body", "is required.");
        var attachments = Attachments(request.Attachments, "attachments", v);
        v.ThrowIfInvalid();
        var visibility = request.Visibility == Visibility.Unspecified ? 1 : (int)request.Visibility;
        await store.AddCommentAsync(id, visibility, body, attachments, Opt(request.RequestId), context.Caller(), context.CancellationToken);
        return await ViewAsync(id, context);
    }

    [Allow(Roles.Service, Roles.ServiceSupervisor)]
    public override async Task<Ticket> ChangeState(ChangeStateRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var id = Ids.Parse(request.TicketId, "ticket_id", v);
        v.Require(request.State != TicketState.Unspecified, "state", "is required.");
        v.ThrowIfInvalid();
        await store.ChangeStateAsync(id, (int)request.State, context.Caller(), context.CancellationToken);
        return await ViewAsync(id, context);
    }

    [Allow(Roles.Service, Roles.ServiceSupervisor, Roles.Member)]
    public override async Task<Ticket> ReopenTicket(ReopenTicketRequest request, ServerCallContext context)
    {
        var id = Ids.Parse(request.TicketId, "ticket_id");
        await store.ReopenAsync(id, Opt(request.Reason), context.Caller(), context.CancellationToken);
        return await ViewAsync(id, context);
    }

    [Allow(Roles.Service, Roles.ServiceSupervisor)]
    public override async Task<Ticket> AssignTicket(AssignTicketRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var id = Ids.Parse(request.TicketId, "ticket_id", v);
        var agent = Opt(request.AgentId);
        var queue = Opt(request.Queue);
        v.Require(agent is not null || queue is not null, "agent_id", "name an agent, a queue, or both.");
        v.Require(!request.AutoAssign || queue is not null, "queue", "is required for auto_assign.");
        v.Require(!request.AutoAssign || agent is null, "agent_id", "must be empty with auto_assign.");
        v.ThrowIfInvalid();
        await store.AssignAsync(id, agent, queue, request.AutoAssign, context.Caller(), context.CancellationToken);
        return await ViewAsync(id, context);
    }

    [Allow(Roles.ServiceSupervisor)]
    public override async Task<Queue> UpsertQueue(UpsertQueueRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var name = request.Name.Trim();
        v.Require(Regex.IsMatch(name, "^[a-z0-9][a-z0-9_.-]{0,99}$"), "name", "is required: lower-case letters, digits, '-', '_', '.'.");
        var agents = request.AgentIds.Select(a => a.Trim()).ToList();
        v.Require(agents.All(a => a.Length > 0), "agent_ids", "must not contain empty ids.");
        v.ThrowIfInvalid();
        var team = Opt(request.Team);
        await store.UpsertQueueAsync(name, team, request.SupervisorQueue, agents.Distinct().ToList(), context.Caller(), context.CancellationToken);
        var queue = new Queue { Name = name, Team = team ?? "", SupervisorQueue = request.SupervisorQueue };
        queue.AgentIds.AddRange(agents.Distinct().Order(StringComparer.Ordinal));
        return queue;
    }

    [Allow(Roles.Service, Roles.ServiceSupervisor)]
    public override async Task<ListAtRiskResponse> ListAtRisk(ListAtRiskRequest request, ServerCallContext context)
    {
        var v = new Validator();
        v.Require(request.WithinMinutes is >= 1 and <= 43_200, "within_minutes", "must be between 1 and 43,200 (30 days).");
        var pageSize = PageToken.PageSize(request.PageSize, v);
        var queue = Opt(request.Queue);
        var filters = $"within={request.WithinMinutes}|queue={queue}";
        (DateTime, Guid, string)? after = null;
        if (PageToken.Decode(request.PageToken, filters, v) is { } key)
        {
            var parts = key.Split('|');
            if (parts.Length == 3 && long.TryParse(parts[0], out var ticks) && Guid.TryParse(parts[1], out var tid))
                after = (new DateTime(ticks, DateTimeKind.Utc), tid, parts[2]);
            else v.Add("page_token", "is not a page token returned by this service.");
        }
        v.ThrowIfInvalid();
        var rows = await queries.AtRiskAsync(request.WithinMinutes, queue, after, pageSize + 1, context.CancellationToken);
        var response = new ListAtRiskResponse();
        response.Tickets.AddRange(rows.Take(pageSize).Select(r => new AtRiskTicket
        {
            TicketId = r.TicketId.ToString(), Target = r.Target, DueAt = Wire.Utc(r.DueAt), Priority = (Priority)r.Priority,
            Queue = r.Queue ?? "", Assignee = r.Assignee ?? "",
        }));
        if (rows.Count > pageSize)
        {
            var last = rows[pageSize - 1];
            response.NextPageToken = PageToken.Encode($"{last.DueAt.Ticks}|{last.TicketId}|{last.Target}", filters);
        }
        return response;
    }

    [Allow(Roles.Service, Roles.Member)]
    public override async Task<Ticket> AnswerSurvey(AnswerSurveyRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var id = Ids.Parse(request.TicketId, "ticket_id", v);
        v.Require(request.Score is >= 1 and <= 5, "score", "must be between 1 and 5.");
        v.ThrowIfInvalid();
        await store.AnswerSurveyAsync(id, request.Score, Opt(request.Comment), context.Caller(), context.CancellationToken);
        return await ViewAsync(id, context);
    }

    [Allow(Roles.ServiceSupervisor)]
    public override async Task<AgentReview> ReviewAgent(ReviewAgentRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var agent = request.AgentId.Trim();
        v.Require(agent.Length > 0, "agent_id", "is required.");
        var periodStart = Period(request.Period, v);
        var s = request.Scores;
        int[] scores = s is null ? [] : [s.Confidence, s.Warmth, s.Attentiveness, s.Patience, s.Sincerity, s.Care];
        if (s is null) v.Add("scores", "are required: confidence, warmth, attentiveness, patience, sincerity, care (1-5 each).");
        else
        {
            string[] names = ["confidence", "warmth", "attentiveness", "patience", "sincerity", "care"];
            for (var i = 0; i < 6; i++) v.Require(scores[i] is >= 1 and <= 5, $"scores.{names[i]}", "must be between 1 and 5.");
        }
        v.ThrowIfInvalid();
        var caller = context.Caller();
        await queries.ReviewAsync(agent, request.Period, periodStart, caller.Subject, scores, request.Comment.Trim(), context.CancellationToken);
        return new AgentReview
        {
            AgentId = agent, Period = request.Period, Reviewer = caller.Subject, Scores = s, Comment = request.Comment.Trim(),
            ReviewedAt = Google.Protobuf.WellKnownTypes.Timestamp.FromDateTime(DateTime.UtcNow),
        };
    }

    [Allow(Roles.ServiceSupervisor)]
    public override async Task<AgentReport> GetAgentReport(GetAgentReportRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var agent = request.AgentId.Trim();
        v.Require(agent.Length > 0, "agent_id", "is required.");
        var (from, to) = Range(request.From, request.To, v);
        v.ThrowIfInvalid();
        var r = await queries.AgentReportAsync(agent, from, to, context.CancellationToken);
        var q = r.Qualities;
        return new AgentReport
        {
            AgentId = agent, ReviewCount = r.ReviewCount,
            ReviewScores = new QualityAverages
            {
                Confidence = Round(q[0]), Warmth = Round(q[1]), Attentiveness = Round(q[2]), Patience = Round(q[3]), Sincerity = Round(q[4]),
                Care = Round(q[5]), Overall = r.ReviewCount == 0 ? 0 : Round(q.Average()),
            },
            TicketsHandled = r.Handled, TicketsResolved = r.Resolved, SurveysAnswered = r.Surveys, CsatAverage = Round(r.Csat),
            SlaCompliancePercent = TicketQueries.Percent(r.SlaMet, r.SlaBreached), SlaTargetsMet = r.SlaMet, SlaTargetsBreached = r.SlaBreached,
        };
    }

    [Allow(Roles.ServiceSupervisor)]
    public override async Task<ServiceReport> GetServiceReport(GetServiceReportRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var (from, to) = Range(request.From, request.To, v);
        v.Require(request.TopTags is >= 0 and <= 50, "top_tags", "must be between 0 and 50 (0 means 5).");
        v.ThrowIfInvalid();
        var r = await queries.ServiceReportAsync(from, to, request.TopTags == 0 ? 5 : request.TopTags, context.CancellationToken);
        var report = new ServiceReport
        {
            TicketsOpened = r.Opened, MedianFirstResponseMinutes = Round(r.MedianFirstResponseMinutes),
            MedianResolutionMinutes = Round(r.MedianResolutionMinutes), SlaCompliancePercent = r.SlaCompliance, CsatAverage = Round(r.Csat),
            SurveysAnswered = r.Surveys,
        };
        report.ByType.AddRange(r.ByType.Select(Count));
        report.ByChannel.AddRange(r.ByChannel.Select(Count));
        report.ByPriority.AddRange(r.ByPriority.Select(Count));
        report.TopComplaintTags.AddRange(r.TopComplaintTags.Select(Count));
        return report;
    }

    [Allow(Roles.Service, Roles.ServiceSupervisor, Roles.Member)]
    public override async Task<ListTicketsResponse> ListCustomerHistory(ListCustomerHistoryRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var customerId = Ids.Parse(request.CustomerId, "customer_id", v);
        var pageSize = PageToken.PageSize(request.PageSize, v);
        var filters = $"customer={customerId}";
        var before = Before(request.PageToken, filters, v);
        v.ThrowIfInvalid();
        context.RequireSelf(customerId);
        return Page(await queries.HistoryAsync(customerId, before, pageSize + 1, context.CancellationToken), pageSize, filters);
    }

    [Allow(Roles.Service, Roles.ServiceSupervisor)]
    public override async Task<ListTicketsResponse> SearchTickets(SearchTicketsRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var query = Opt(request.Query);
        Guid? customerId = request.CustomerId.Length == 0 ? null : Ids.Parse(request.CustomerId, "customer_id", v);
        var tag = Opt(request.Tag);
        v.Require(query is not null || customerId is not null || tag is not null || request.State != TicketState.Unspecified,
            "query", "give a keyword or at least one filter (customer_id, tag, state).");
        var pageSize = PageToken.PageSize(request.PageSize, v);
        var filters = $"q={query}|c={customerId}|t={tag}|s={(int)request.State}";
        var before = Before(request.PageToken, filters, v);
        v.ThrowIfInvalid();
        var rows = await queries.SearchAsync(new SearchFilter(query, customerId, tag, (int)request.State), before, pageSize + 1, context.CancellationToken);
        return Page(rows, pageSize, filters);
    }

    // ---- helpers ----

    private async Task<Ticket> ViewAsync(Guid id, ServerCallContext context) =>
        Wire.ToProto(await store.GetAsync(id, context.Caller(), context.CancellationToken));

    private static ListTicketsResponse Page(IReadOnlyList<SummaryRow> rows, int pageSize, string filters)
    {
        var response = new ListTicketsResponse();
        response.Tickets.AddRange(rows.Take(pageSize).Select(Wire.ToProto));
        if (rows.Count > pageSize)
        {
            var last = rows[pageSize - 1];
            response.NextPageToken = PageToken.Encode($"{last.OpenedAt.Ticks}|{last.Id}", filters);
        }
        return response;
    }

    private static (DateTime, Guid)? Before(string token, string filters, Validator v)
    {
        if (PageToken.Decode(token, filters, v) is not { } key) return null;
        var parts = key.Split('|');
        if (parts.Length == 2 && long.TryParse(parts[0], out var ticks) && ticks is > 0 and < 3_155_378_975_999_999_999 && Guid.TryParse(parts[1], out var id))
            return (new DateTime(ticks, DateTimeKind.Utc), id);
        v.Add("page_token", "is not a page token returned by this service.");
        return null;
    }

    private static string? Opt(string value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();

    private static double Round(double value) => Math.Round(value, 2);

    private static V1.Count Count((string Key, int Count) c) => new() { Key = c.Key, Count_ = c.Count };

    private static List<string> Tags(IEnumerable<string> tags, string field, Validator v)
    {
        var list = tags.Select(t => t.Trim()).ToList();
        v.Require(list.All(t => t.Length > 0), field, "must not contain empty tags.");
        return list.Distinct().ToList();
    }

    private static List<AttachmentRef> Attachments(IEnumerable<Attachment> attachments, string field, Validator v)
    {
        var list = attachments.Select(a => new AttachmentRef(a.Uri.Trim(), a.Name.Trim(), a.ContentType.Trim())).ToList();
        for (var i = 0; i < list.Count; i++) v.Require(list[i].Uri.Length > 0, $"{field}[{i}].uri", "is required: where the file lives.");
        return list;
    }

    private static DateOnly Period(string period, Validator v)
    {
        if (DateOnly.TryParseExact(period + "-01", "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var start) && period.Length == 7)
            return start;
        v.Add("period", "must be a month, YYYY-MM.");
        return default;
    }

    private static (DateTime From, DateTime To) Range(Google.Protobuf.WellKnownTypes.Timestamp? from, Google.Protobuf.WellKnownTypes.Timestamp? to, Validator v)
    {
        if (from is null) v.Add("from", "is required.");
        if (to is null) v.Add("to", "is required.");
        if (from is null || to is null) return default;
        var (f, t) = (from.ToDateTime(), to.ToDateTime());
        v.Require(f < t, "to", "must be after from.");
        return (f, t);
    }
}
