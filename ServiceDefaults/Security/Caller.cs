using System.Security.Claims;
using Grpc.Core;
using Microsoft.AspNetCore.Http;

namespace Crm.ServiceDefaults.Security;

/// <summary>
/// Who is calling: the validated token's subject (a customer id for a member, a user id for staff), roles,
/// client id, team (the <c>team</c> claim: whose work a sales manager or service supervisor oversees) and, for a
/// partner, the source systems it speaks for (the <c>systems</c> claim, space-separated like OAuth scopes: "erp tmall").
/// </summary>
public sealed record Caller(string Subject, IReadOnlyList<string> Roles, string? ClientId, string? Team = null, IReadOnlySet<string>? Systems = null)
{
    /// <summary>A partner system and nothing more: it reaches only customers and orders of its own systems.</summary>
    public bool IsPartnerOnly => Roles.Count > 0 && Roles.All(r => r == Security.Roles.Partner);

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
            user.FindFirst("team")?.Value,
            (user.FindFirst("systems")?.Value ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries)
                .Select(SourceSystem.Normalize).ToHashSet(StringComparer.Ordinal));
    }
}

public static class CallerExtensions
{
    public static Caller Caller(this ServerCallContext context) => context.GetHttpContext().Caller();

    /// <summary>
    /// <see cref="Security.Caller.From"/> of the request's user, worked out once per request: the rate limiter, the audit
    /// and the access checks of one call all ask for it.
    /// </summary>
    public static Caller Caller(this HttpContext http)
    {
        var user = http.User;
        if (http.Features.Get<CallerFeature>() is { } known && ReferenceEquals(known.User, user)) return known.Caller;
        var caller = Security.Caller.From(user);
        http.Features.Set(new CallerFeature(user, caller));
        return caller;
    }

    private sealed record CallerFeature(ClaimsPrincipal User, Caller Caller);

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

    /// <summary>
    /// A partner may only name external ids of the systems its token lists: another system's is PERMISSION_DENIED
    /// (so one partner can neither read nor overwrite the customers another system pushed). Staff roles pass.
    /// </summary>
    public static void RequireSystem(this ServerCallContext context, string system)
    {
        var caller = context.Caller();
        if (!caller.IsPartnerOnly || caller.Systems?.Contains(system) == true) return;
        // A malformed system name is the validator's to answer (INVALID_ARGUMENT naming the field), not a refusal.
        if (!SourceSystem.IsValid(system)) return;
        throw new RpcException(new Status(StatusCode.PermissionDenied, caller.Systems is { Count: > 0 }
            ? $"This partner token speaks for {string.Join(", ", caller.Systems.Order())}, not for '{Errors.Echo.Cut(system)}'."
            : "This partner token names no source system (claim 'systems'): it may not use external ids."));
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
