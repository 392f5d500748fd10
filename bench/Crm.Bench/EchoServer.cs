using Crm.Bench.V1;
using Crm.ServiceDefaults.Security;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Crm.Bench;

/// <summary>
/// The RPC-stack ceiling: Kestrel (HTTP/2 cleartext) + Grpc.AspNetCore with one unary method that returns its
/// request, no interceptors, no telemetry, no database. Measured with the same client loop as the real calls.
/// Secured, it puts the services' own per-call security in front of the same method — JWT bearer validation
/// (ServiceDefaults' AddCrmAuthentication with its token cache), the per-caller rate limiter and the [Allow] role
/// check — so the difference between the two is what authentication and authorization cost per call.
/// </summary>
public sealed class EchoServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private EchoServer(WebApplication app, Uri address)
    {
        _app = app;
        Address = address;
    }

    public Uri Address { get; }

    public static async Task<EchoServer> StartAsync(int port, bool secured = false)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(System.Net.IPAddress.Loopback, port, o => o.Protocols = HttpProtocols.Http2));
        builder.Services.AddGrpc();
        if (secured)
        {
            builder.Configuration.AddCommandLine(BenchAuth.ServiceArgs);
            builder.AddCrmAuthentication();
            builder.AddCrmRateLimits();
        }
        var app = builder.Build();
        if (secured)
        {
            // The order GrpcDefaults uses for the services.
            app.UseAuthentication();
            app.UseRateLimiter();
            app.UseAuthorization();
            app.MapGrpcService<SecuredEchoService>();
        }
        else app.MapGrpcService<EchoService>();
        await app.StartAsync();
        return new EchoServer(app, new Uri($"http://127.0.0.1:{port}"));
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private sealed class EchoService : V1.EchoService.EchoServiceBase
    {
        public override Task<EchoMessage> Echo(EchoMessage request, ServerCallContext context) => Task.FromResult(request);
    }

    private sealed class SecuredEchoService : V1.EchoService.EchoServiceBase
    {
        [Allow(Roles.Store, Roles.Service)]
        public override Task<EchoMessage> Echo(EchoMessage request, ServerCallContext context) => Task.FromResult(request);
    }
}
