using System.Text.Json;
using Crm.Tickets.Domain;
using Crm.Tickets.V1;
using Google.Protobuf.WellKnownTypes;

namespace Crm.Tickets.Grpc;

internal static class Wire
{
    public static Timestamp Utc(DateTime value) => Timestamp.FromDateTime(DateTime.SpecifyKind(value, DateTimeKind.Utc));
    private static Timestamp? Utc(DateTime? value) => value is { } v ? Utc(v) : null;

    public static List<AttachmentRef> Attachments(string json) =>
        JsonSerializer.Deserialize<List<AttachmentRef>>(json, TicketStore.Json) ?? [];

    public static Attachment ToProto(AttachmentRef a) => new() { Uri = a.Uri, Name = a.Name, ContentType = a.ContentType };

    public static Ticket ToProto(TicketView view)
    {
        var t = view.Ticket;
        var ticket = new Ticket
        {
            Id = t.Id.ToString(), CustomerId = t.CustomerId.ToString(), Type = (TicketType)t.Type, Channel = (V1.Channel)t.Channel,
            Priority = (Priority)t.Priority, State = (TicketState)t.State, OrderRef = t.OrderRef ?? "", Subject = t.Subject,
            Description = t.Description, Queue = t.Queue ?? "", Assignee = t.Assignee ?? "", CustomerTier = t.CustomerTier ?? "",
            Escalated = t.Escalated, OpenedAt = Utc(t.OpenedAt), ResolvedAt = Utc(t.ResolvedAt), ClosedAt = Utc(t.ClosedAt),
            OpenedBy = t.OpenedBy,
            FirstResponse = new SlaTarget
            {
                Kind = "first_response", TargetBusinessMinutes = t.FrTargetMinutes, DueAt = Utc(t.FrDueAt), MetAt = Utc(t.FrMetAt),
                BreachedAt = Utc(t.FrBreachedAt),
            },
            Resolution = new SlaTarget
            {
                Kind = "resolution", TargetBusinessMinutes = t.ResTargetMinutes, DueAt = Utc(t.ResDueAt), MetAt = Utc(t.ResMetAt),
                BreachedAt = Utc(t.ResBreachedAt), Paused = t.PausedSince is not null && States.IsOpen(t.State),
            },
        };
        ticket.Tags.AddRange(t.Tags);
        ticket.Attachments.AddRange(Attachments(t.Attachments).Select(ToProto));
        foreach (var c in view.Comments)
        {
            var comment = new Comment
            {
                Id = c.Id, Author = c.Author, AuthorRole = c.AuthorRole, Visibility = (Visibility)c.Visibility, Body = c.Body,
                CreatedAt = Utc(c.CreatedAt),
            };
            comment.Attachments.AddRange(Attachments(c.Attachments).Select(ToProto));
            ticket.Comments.Add(comment);
        }
        ticket.ComplaintSteps.AddRange(view.Steps.Select(s => new ComplaintStep { Step = s.Step, By = s.DoneBy, At = Utc(s.DoneAt) }));
        if (t.State is States.Resolved or States.Closed || t.SurveyAnsweredAt is not null)
            ticket.Survey = new Survey
            {
                Score = t.SurveyScore ?? 0, Comment = t.SurveyComment ?? "", AnsweredAt = Utc(t.SurveyAnsweredAt), Pending = t.SurveyAnsweredAt is null,
            };
        return ticket;
    }

    public static TicketSummary ToProto(SummaryRow r)
    {
        var s = new TicketSummary
        {
            Id = r.Id.ToString(), CustomerId = r.CustomerId.ToString(), Type = (TicketType)r.Type, State = (TicketState)r.State,
            Priority = (Priority)r.Priority, Subject = r.Subject, OpenedAt = Utc(r.OpenedAt), Csat = r.SurveyScore ?? 0, SlaOutcome = r.SlaOutcome,
        };
        s.Tags.AddRange(r.Tags);
        return s;
    }
}
