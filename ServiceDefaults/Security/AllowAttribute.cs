using Microsoft.AspNetCore.Authorization;

namespace Crm.ServiceDefaults.Security;

/// <summary>
/// Who may call a gRPC method, declared on its implementation: <c>[Allow(Roles.Admin, Roles.Store)]</c>.
/// An ASP.NET Core <see cref="AuthorizeAttribute"/>, so it becomes endpoint metadata the authorization
/// middleware enforces (a caller in none of the roles gets PERMISSION_DENIED). Every RPC must carry one:
/// a test fails for a method without it, and without it the fallback policy only asks for a valid token.
/// Admin is always allowed.
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = true)]
public sealed class AllowAttribute : AuthorizeAttribute
{
    public AllowAttribute(params string[] roles)
    {
        if (roles.Length == 0) throw new ArgumentException("Name at least one role.", nameof(roles));
        foreach (var role in roles)
            if (!Security.Roles.All.Contains(role)) throw new ArgumentException($"Unknown role '{role}'.", nameof(roles));
        AllowedRoles = roles.Contains(Security.Roles.Admin) ? roles : [Security.Roles.Admin, .. roles];
        Roles = string.Join(',', AllowedRoles);
    }

    /// <summary>The roles allowed, admin included.</summary>
    public IReadOnlyList<string> AllowedRoles { get; }
}
