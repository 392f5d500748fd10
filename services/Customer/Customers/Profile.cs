namespace Crm.Customer.Customers;

/// <summary>A validated, normalised customer profile: what the database holds.</summary>
public sealed record Profile
{
    public required string Name { get; init; }
    public short Gender { get; init; }
    public DateOnly? Birthday { get; init; }
    public required string Phone { get; init; }
    public string? Email { get; init; }
    public string? Region { get; init; }
    public string? City { get; init; }
    public string? Address { get; init; }
    public string? Education { get; init; }
    public string? Occupation { get; init; }
    public string[] Preferences { get; init; } = [];
    public string[] Tags { get; init; } = [];
    public string? SourceChannel { get; init; }
    public bool MarketingConsent { get; init; }
}

/// <summary>A customer row.</summary>
public sealed record CustomerRecord
{
    public Guid Id { get; init; }
    public long Seq { get; init; }
    public required Profile Profile { get; init; }
    public long Version { get; init; }
    public DateTime CreatedAt { get; init; }
    public DateTime UpdatedAt { get; init; }
    /// <summary>The ids partner systems know the customer by, ordered by system.</summary>
    public IReadOnlyList<ExternalId> ExternalIds { get; init; } = [];
}
