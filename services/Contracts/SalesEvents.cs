namespace Crm.Contracts;

/// <summary>A qualified lead became a customer (created, or an existing one linked) with an opportunity opened.</summary>
public sealed record LeadConverted(
    Guid LeadId, Guid CustomerId, bool CustomerCreated, Guid OpportunityId, string OwnerId, string? OwnerTeam, DateTimeOffset ConvertedAt);

/// <summary>An opportunity moved to the won stage. Amount is the deal's amount in yuan (CNY).</summary>
public sealed record OpportunityWon(
    Guid OpportunityId, Guid CustomerId, decimal Amount, string OwnerId, string? OwnerTeam, string Reason, DateTimeOffset WonAt);

/// <summary>An opportunity moved to the lost stage from FromStage.</summary>
public sealed record OpportunityLost(
    Guid OpportunityId, Guid CustomerId, decimal Amount, string OwnerId, string? OwnerTeam, string FromStage, string Reason, DateTimeOffset LostAt);

/// <summary>An activity's due time came while it was not done; published once per activity.</summary>
public sealed record TaskDue(
    Guid ActivityId, string Kind, string Subject, string OwnerId, Guid? LeadId, Guid? OpportunityId, Guid? CustomerId, DateTimeOffset DueAt);
