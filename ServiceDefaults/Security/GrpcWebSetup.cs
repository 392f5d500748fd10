using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Crm.ServiceDefaults.Security;

/// <summary>
/// gRPC-Web for browser consoles on every service, with a CORS allow-list from <c>GrpcWeb:AllowedOrigins</c>
/// (none by default: no cross-origin browser calls). Tokens travel in the authorization header as for gRPC.
/// A browser needs HTTP/1.1 (or HTTP/2 over TLS) on the endpoint it calls.
/// </summary>
public static class GrpcWebSetup
{
    public static void AddCrmGrpcWeb(this IHostApplicationBuilder builder)
    {
        var origins = builder.Configuration.GetSection("GrpcWeb:AllowedOrigins").GetChildren()
            .Select(c => c.Value).Where(v => !string.IsNullOrWhiteSpace(v)).Select(v => v!.TrimEnd('/')).ToArray();
        builder.Services.AddCors(o => o.AddDefaultPolicy(p =>
        {
            if (origins.Length == 0) return;
            p.WithOrigins(origins).AllowAnyMethod()
                .WithHeaders("authorization", "content-type", "x-grpc-web", "x-user-agent", "grpc-timeout")
                .WithExposedHeaders("grpc-status", "grpc-message", "grpc-status-details-bin", "grpc-encoding", "grpc-accept-encoding", "retry-after");
        }));
    }

    public static void UseCrmGrpcWeb(this WebApplication app)
    {
        app.UseGrpcWeb(new GrpcWebOptions { DefaultEnabled = true });
        app.UseCors(); // before authentication: a preflight carries no token
    }
}
