namespace Crm.Tickets.Domain;

/// <summary>States as stored (the proto numbers of crm.tickets.v1.TicketState).</summary>
public static class States
{
    public const int New = 1, Acknowledged = 2, InProgress = 3, WaitingOnCustomer = 4, Resolved = 5, Closed = 6;
    public static bool IsOpen(int state) => state is >= New and <= WaitingOnCustomer;
}

public static class TicketTypes
{
    public const int Complaint = 2, CareCall = 6;
}

public static class Priorities
{
    public const int Low = 1, Normal = 2, High = 3, Urgent = 4;
}

public sealed record AttachmentRef(string Uri, string Name, string ContentType);

/// <summary>One row of tickets, changed in memory under its row lock and written back whole.</summary>
public sealed class TicketRow
{
    public Guid Id { get; set; }
    public Guid CustomerId { get; set; }
    public int Type { get; set; }
    public int Channel { get; set; }
    public int Priority { get; set; }
    public int State { get; set; }
    public string? OrderRef { get; set; }
    public string Subject { get; set; } = "";
    public string Description { get; set; } = "";
    public string[] Tags { get; set; } = [];
    public string Attachments { get; set; } = "[]";
    public string? Queue { get; set; }
    public string? Assignee { get; set; }
    public string? CustomerTier { get; set; }
    public bool Escalated { get; set; }
    public string OpenedBy { get; set; } = "";
    public DateTime OpenedAt { get; set; }
    public DateTime UpdatedAt { get; set; }
    public string? IdempotencyKey { get; set; }
    public int FrTargetMinutes { get; set; }
    public DateTime FrDueAt { get; set; }
    public DateTime? FrMetAt { get; set; }
    public DateTime? FrBreachedAt { get; set; }
    public DateTime? FirstResponseAt { get; set; }
    public int ResTargetMinutes { get; set; }
    public DateTime? ResDueAt { get; set; }
    public DateTime? ResMetAt { get; set; }
    public DateTime? ResBreachedAt { get; set; }
    public DateTime? PausedSince { get; set; }
    public long PausedSeconds { get; set; }
    public DateTime? ResolvedAt { get; set; }
    public DateTime? ClosedAt { get; set; }
    public int? SurveyScore { get; set; }
    public string? SurveyComment { get; set; }
    public DateTime? SurveyAnsweredAt { get; set; }

    public const string Columns = """
        id, customer_id, type, channel, priority, state, order_ref, subject, description, tags, attachments::text AS attachments,
        queue, assignee, customer_tier, escalated, opened_by, opened_at, updated_at, idempotency_key, fr_target_minutes, fr_due_at,
        fr_met_at, fr_breached_at, first_response_at, res_target_minutes, res_due_at, res_met_at, res_breached_at, paused_since,
        paused_seconds, resolved_at, closed_at, survey_score, survey_comment, survey_answered_at
        """;
}

public sealed class CommentRow
{
    public long Id { get; set; }
    public Guid TicketId { get; set; }
    public string Author { get; set; } = "";
    public string AuthorRole { get; set; } = "";
    public int Visibility { get; set; }
    public string Body { get; set; } = "";
    public string Attachments { get; set; } = "[]";
    public DateTime CreatedAt { get; set; }
}

public sealed class ComplaintStepRow
{
    public string Step { get; set; } = "";
    public string DoneBy { get; set; } = "";
    public DateTime DoneAt { get; set; }
}

public sealed record TicketView(TicketRow Ticket, IReadOnlyList<CommentRow> Comments, IReadOnlyList<ComplaintStepRow> Steps);
