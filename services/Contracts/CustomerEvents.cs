namespace Crm.Contracts;

/// <summary>The profile as it stands after the change; consumers keep their own read models from it.</summary>
public sealed record CustomerSnapshot(
    Guid CustomerId,
    string Name,
    string Phone,
    string? Email,
    DateOnly? Birthday,
    string? Region,
    string? City,
    IReadOnlyList<string> Tags,
    string? SourceChannel,
    bool MarketingConsent,
    long Version);

public sealed record CustomerRegistered(CustomerSnapshot Customer, DateTimeOffset RegisteredAt);

public sealed record CustomerUpdated(CustomerSnapshot Customer, IReadOnlyList<string> ChangedFields, DateTimeOffset UpdatedAt);
