using Dapper;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Authorization.Policy;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Crm.ServiceDefaults.Security.Audit;

/// <summary>
/// Refused calls of authenticated callers go to the audit log too (outcome <c>DENIED</c>): a role without
/// the RPC (refused by the authorization middleware, before the request is read, so no target) and a member
/// naming someone else's account (refused in the handler, with the target). Written on their own, outside any
/// write's transaction; a failure to write is logged and the caller still gets its PERMISSION_DENIED.
/// Calls without a valid token are not written (anyone can make those; they are logged and rate-limited).
/// </summary>
public static class DeniedAttempts
{
    public const string Outcome = "DENIED";

    internal static async Task RecordAsync(IServiceProvider services, Caller caller, string rpc, string? targetId, string? idempotencyKey)
    {
        if (services.GetService<NpgsqlDataSource>() is not { } dataSource) return;
        try
        {
            await using var connection = await dataSource.OpenConnectionAsync();
            await connection.ExecuteAsync("""
                INSERT INTO audit_events (subject, role, client_id, rpc, target_id, idempotency_key, outcome)
                VALUES (@Subject, @Role, @ClientId, @Rpc, @TargetId, @IdempotencyKey, @Outcome)
                """, new { caller.Subject, caller.Role, caller.ClientId, Rpc = rpc, TargetId = targetId, IdempotencyKey = idempotencyKey, Outcome });
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or InvalidOperationException)
        {
            services.GetService<ILoggerFactory>()?.CreateLogger(typeof(DeniedAttempts))
                .LogWarning(e, "Could not write the audit row of a refused call to {Rpc} by {Subject}", rpc, caller.Subject);
        }
    }
}

/// <summary>The default authorization result handling, plus an audit row when an authenticated caller is forbidden.</summary>
internal sealed class AuditingAuthorizationResultHandler : IAuthorizationMiddlewareResultHandler
{
    private readonly AuthorizationMiddlewareResultHandler _default = new();

    public async Task HandleAsync(RequestDelegate next, HttpContext context, AuthorizationPolicy policy, PolicyAuthorizationResult authorizeResult)
    {
        if (authorizeResult.Forbidden && context.User.Identity?.IsAuthenticated == true)
            await DeniedAttempts.RecordAsync(context.RequestServices, Caller.From(context.User), context.Request.Path.Value ?? "", null, null);
        await _default.HandleAsync(next, context, policy, authorizeResult);
    }
}
