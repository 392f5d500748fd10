using Crm.ServiceDefaults.Security;
using Grpc.Core;

namespace Crm.Sales;

/// <summary>
/// Row-level access: admin sees everything; a sales manager the rows of its team (owner_team = the token's team
/// claim) and its own; anyone else (sales) its own rows (owner_id = the token's subject).
/// </summary>
public sealed record Scope(string Subject, string? Team, bool All, bool Manager)
{
    public static Scope Of(ServerCallContext context)
    {
        var caller = context.Caller();
        var team = string.IsNullOrWhiteSpace(caller.Team) ? null : caller.Team.Trim();
        return new Scope(caller.Subject, team, caller.Roles.Contains(Roles.Admin), caller.Roles.Contains(Roles.SalesManager));
    }

    /// <summary>For the read-only reports: marketing reads them for everyone.</summary>
    public static Scope ForReports(ServerCallContext context)
    {
        var scope = Of(context);
        return context.Caller().Roles.Contains(Roles.Marketing) ? scope with { All = true } : scope;
    }

    public bool CanSee(string ownerId, string? ownerTeam) =>
        All || ownerId == Subject || (Manager && Team is not null && ownerTeam == Team);

    public void Require(string ownerId, string? ownerTeam, string what)
    {
        if (!CanSee(ownerId, ownerTeam))
            throw new RpcException(new Status(StatusCode.PermissionDenied, $"This {what} belongs to another salesperson."));
    }

    /// <summary>The SQL condition on owner_id / owner_team (parameters @scopeSubject, @scopeTeam) and whether it applies.</summary>
    public string Sql(string alias = "") => All ? "true"
        : Manager && Team is not null ? $"({alias}owner_id = @scopeSubject OR {alias}owner_team = @scopeTeam)"
        : $"{alias}owner_id = @scopeSubject";

    /// <summary>
    /// Who a new or reassigned record goes to. Empty: the caller, in the caller's team. Someone else: a manager within
    /// its own team, admin anywhere (team as given); a salesperson may only name itself.
    /// </summary>
    public (string OwnerId, string? OwnerTeam) Assign(string? ownerId, string? ownerTeam)
    {
        var owner = string.IsNullOrWhiteSpace(ownerId) ? Subject : ownerId.Trim();
        if (owner == Subject && !All) return (owner, Team);
        if (All) return (owner, string.IsNullOrWhiteSpace(ownerTeam) ? (owner == Subject ? Team : null) : ownerTeam.Trim());
        if (Manager && Team is not null) return (owner, Team);
        throw new RpcException(new Status(StatusCode.PermissionDenied, "Only a sales manager (within its team) or an admin may give records to another salesperson."));
    }
}
