namespace Crm.Contracts;

// Events of the service-ticket service. Type, Channel, Priority and State are the lower-case names of the proto enums
// without prefix (complaint, online_chat, urgent, resolved ...).

/// <summary>A ticket was opened (by an agent, the member app, or the service itself for a care call).</summary>
public sealed record TicketOpened(
    Guid TicketId, Guid CustomerId, string Type, string Channel, string Priority, string? OrderRef, IReadOnlyList<string> Tags,
    string? CustomerTier, DateTimeOffset OpenedAt);

/// <summary>A ticket was resolved; ResolutionMet says whether it made its resolution target.</summary>
public sealed record TicketResolved(Guid TicketId, Guid CustomerId, string Type, string? Assignee, bool ResolutionMet, DateTimeOffset ResolvedAt);

/// <summary>
/// An SLA target (Target: first_response or resolution) passed its due time unmet. Published once per ticket and
/// target; the ticket was escalated with it (NewPriority, EscalatedTo: the supervisor queue).
/// </summary>
public sealed record SlaBreached(
    Guid TicketId, Guid CustomerId, string Target, DateTimeOffset DueAt, DateTimeOffset DetectedAt, string NewPriority, string EscalatedTo);

/// <summary>A customer answered the satisfaction survey of a resolved ticket (Score 1-5).</summary>
public sealed record SurveyAnswered(Guid TicketId, Guid CustomerId, string? Assignee, int Score, string? Comment, DateTimeOffset AnsweredAt);
