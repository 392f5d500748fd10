using Crm.ServiceDefaults.Errors;
using Crm.ServiceDefaults.Grpc;
using Crm.ServiceDefaults.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace Microsoft.Extensions.Hosting;

/// <summary>gRPC with JWT authentication and deny-by-default authorization, the house error mapping, the descriptor-driven request guard, server reflection and the standard gRPC health service.</summary>
public static class GrpcDefaults
{
    public static void AddGrpcDefaults(this IHostApplicationBuilder builder)
    {
        builder.AddCrmAuthentication();
        builder.AddCrmRateLimits();
        builder.AddCrmGrpcWeb();
        // Grpc.AspNetCore logs every error status with its detail at Information, and a detail may echo a phone or
        // e-mail the caller sent. The ErrorInterceptor logs the errors it makes, scrubbed (Pii.Scrub); keep the framework's at Warning.
        Microsoft.Extensions.Logging.FilterLoggingBuilderExtensions.AddFilter(builder.Logging, "Grpc.AspNetCore.Server.ServerCallHandler", Microsoft.Extensions.Logging.LogLevel.Warning);
        builder.Services.AddGrpc(o =>
        {
            o.Interceptors.Add<ErrorInterceptor>();
            // Inside the error mapping: its violations become INVALID_ARGUMENT like any handler's.
            o.Interceptors.Add<RequestGuard>();
            // Notes caller, RPC, key and target of each call for the audit rows its writes append.
            o.Interceptors.Add<Crm.ServiceDefaults.Security.Audit.AuditInterceptor>();
            o.EnableDetailedErrors = false;
        }).AddJsonTranscoding(o => // HTTP/JSON for the RPCs whose proto says where (google.api.http): same auth, checks and errors
        {
            // The error details the house attaches, written as JSON in the error body ("details": [{"@type": ...}]).
            o.TypeRegistry = Google.Protobuf.Reflection.TypeRegistry.FromMessages(
                Google.Rpc.BadRequest.Descriptor, Google.Rpc.ResourceInfo.Descriptor, Google.Rpc.PreconditionFailure.Descriptor,
                Google.Rpc.ErrorInfo.Descriptor, Google.Rpc.RetryInfo.Descriptor);
        });
        // Unparseable request bodies are INVALID_ARGUMENT, not UNKNOWN.
        builder.Services.AddTransient<IStartupFilter, UnreadableRequestsFilter>();
        builder.Services.AddGrpcReflection();
        builder.Services.AddSingleton<Microsoft.AspNetCore.Authorization.IAuthorizationMiddlewareResultHandler,
            Crm.ServiceDefaults.Security.Audit.AuditingAuthorizationResultHandler>();
        // The audit_events table, in the service's own database.
        builder.Services.AddSingleton(new Crm.ServiceDefaults.Data.MigrationScripts(typeof(Crm.ServiceDefaults.Security.Audit.Audit).Assembly));
        // The gRPC health service reports the same checks as /health.
        builder.Services.AddGrpcHealthChecks();
    }

    public static void MapGrpcDefaults(this WebApplication app)
    {
        app.UseCrmGrpcWeb();
        app.UseAuthentication();
        app.UseRateLimiter(); // per caller: needs the authenticated user
        app.UseAuthorization();
        // Reflection describes the API, not data: open to anyone in Development, admin-only elsewhere.
        var reflection = app.MapGrpcReflectionService();
        if (app.Environment.IsDevelopment()) reflection.AllowAnonymous();
        else reflection.RequireAuthorization(AuthSetup.AdminPolicy);
        app.MapGrpcHealthChecksService().AllowAnonymous();
        app.MapGrpcService<Crm.ServiceDefaults.Security.Audit.AuditGrpcService>();
    }
}
