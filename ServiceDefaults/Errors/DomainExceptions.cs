namespace Crm.ServiceDefaults.Errors;

/// <summary>
/// Errors a service raises on purpose. The gRPC error interceptor turns each into its precise status code
/// with google.rpc details; anything else is a bug and becomes INTERNAL.
/// </summary>
public abstract class DomainException(string message) : Exception(message);

public sealed record FieldViolation(string Field, string Description);

/// <summary>INVALID_ARGUMENT with one google.rpc.BadRequest field violation per bad field.</summary>
public sealed class ValidationException(IReadOnlyList<FieldViolation> violations)
    : DomainException("Invalid request: " + string.Join("; ", violations.Select(v => $"{v.Field}: {v.Description}")))
{
    public IReadOnlyList<FieldViolation> Violations { get; } = violations;

    public ValidationException(string field, string description) : this([new FieldViolation(field, description)]) { }
}

/// <summary>NOT_FOUND, with google.rpc.ResourceInfo.</summary>
public sealed class NotFoundException(string resourceType, string resourceName)
    : DomainException($"{resourceType} '{resourceName}' was not found.")
{
    public string ResourceType { get; } = resourceType;
    public string ResourceName { get; } = resourceName;
}

/// <summary>ALREADY_EXISTS, with google.rpc.ResourceInfo naming the resource that already holds the value.</summary>
public sealed class AlreadyExistsException(string resourceType, string resourceName, string description)
    : DomainException(description)
{
    public string ResourceType { get; } = resourceType;
    public string ResourceName { get; } = resourceName;
}

/// <summary>FAILED_PRECONDITION, with google.rpc.PreconditionFailure: the request is valid but the state forbids it.</summary>
public sealed class PreconditionFailedException(string type, string subject, string description)
    : DomainException(description)
{
    public string Type { get; } = type;
    public string Subject { get; } = subject;
}

/// <summary>ABORTED: the version the caller read is stale; read again and retry.</summary>
public sealed class ConcurrencyConflictException(string resourceType, string resourceName, long expectedVersion, long? actualVersion)
    : DomainException($"{resourceType} '{resourceName}' was changed by someone else: you sent version {expectedVersion}, it is now at version {actualVersion}. Read it again and retry.")
{
    public string ResourceType { get; } = resourceType;
    public string ResourceName { get; } = resourceName;
    public long ExpectedVersion { get; } = expectedVersion;
    public long? ActualVersion { get; } = actualVersion;
}
