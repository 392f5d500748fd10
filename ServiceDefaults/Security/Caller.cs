using System.Security.Claims;
using Grpc.Core;

namespace Crm.ServiceDefaults.Security;

/// <summary>
/// Who is calling: the validated token's subject (a customer id for a member, a user id for staff), roles,
/// client id and team (the <c>team</c> claim: whose work a sales manager or service supervisor oversees).
/// </summary>
public sealed record Caller(string Subject, IReadOnlyList<string> Roles, string? ClientId, string? Team = null)
{
    /// <summary>The member app acting for one customer, and nothing more (no staff role besides).</summary>
    public bool IsMemberOnly => Roles.Contains(Security.Roles.Member) && Roles.All(r => r == Security.Roles.Member);

    /// <summary>The first role, for the audit trail (tokens normally carry one).</summary>
    public string Role => Roles.Count == 0 ? "" : string.Join(',', Roles);

    public static Caller From(ClaimsPrincipal user)
    {
        var identity = user.Identity as ClaimsIdentity;
        var roleType = identity?.RoleClaimType ?? "role";
        return new Caller(
            user.FindFirst("sub")?.Value ?? "",
            user.FindAll(roleType).Select(c => c.Value).Distinct().ToList(),
            user.FindFirst("client_id")?.Value ?? user.FindFirst("azp")?.Value,
            user.FindFirst("team")?.Value);
    }
}

public static class CallerExtensions
{
    public static Caller Caller(this ServerCallContext context) => Security.Caller.From(context.GetHttpContext().User);

    /// <summary>
    /// A member may only act on its own customer id (the token's subject): another customer's id is
    /// PERMISSION_DENIED, and the message does not say whether that customer exists. Staff roles pass.
    /// </summary>
    public static void RequireSelf(this ServerCallContext context, Guid customerId)
    {
        var caller = context.Caller();
        if (!caller.IsMemberOnly) return;
        if (!Guid.TryParse(caller.Subject, out var self) || self != customerId)
            throw new RpcException(new Status(StatusCode.PermissionDenied, "A member may only act on its own account."));
    }

    /// <summary>For optional customer ids: a member must name itself.</summary>
    public static void RequireSelf(this ServerCallContext context, Guid? customerId)
    {
        if (context.Caller().IsMemberOnly)
        {
            if (customerId is null) throw new RpcException(new Status(StatusCode.PermissionDenied, "A member must give its own customer_id."));
            context.RequireSelf(customerId.Value);
        }
    }
}
