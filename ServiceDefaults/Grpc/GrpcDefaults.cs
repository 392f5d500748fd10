using Crm.ServiceDefaults.Errors;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Microsoft.Extensions.Hosting;

/// <summary>gRPC with the house error mapping, server reflection and the standard gRPC health service.</summary>
public static class GrpcDefaults
{
    public static void AddGrpcDefaults(this IHostApplicationBuilder builder)
    {
        builder.Services.AddGrpc(o =>
        {
            o.Interceptors.Add<ErrorInterceptor>();
            o.EnableDetailedErrors = false;
        });
        builder.Services.AddGrpcReflection();
        // The gRPC health service reports the same checks as /health.
        builder.Services.AddGrpcHealthChecks();
    }

    public static void MapGrpcDefaults(this WebApplication app)
    {
        app.MapGrpcReflectionService();
        app.MapGrpcHealthChecksService();
    }
}
