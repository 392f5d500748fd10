namespace Crm.Launcher;

/// <summary>A server could not be found, started or reached. The message says why and shows its last log lines.</summary>
public sealed class InfrastructureException : Exception
{
    public InfrastructureException(string message) : base(message) { }
    public InfrastructureException(string message, Exception inner) : base(message, inner) { }
}
