using System.Net;
using System.Net.Sockets;
using Crm.Launcher;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;

namespace Crm.IntegrationTests.Support;

/// <summary>
/// A service built by its own composition root and served by Kestrel on free loopback ports, configured
/// with the same keys the AppHost sets (ConnectionStrings__*, Kestrel endpoints).
/// </summary>
public sealed class ServiceHost : IAsyncDisposable
{
    private readonly WebApplication _app;

    private ServiceHost(WebApplication app, Uri grpcAddress)
    {
        _app = app;
        GrpcAddress = grpcAddress;
        Channel = GrpcChannel.ForAddress(grpcAddress);
    }

    public Uri GrpcAddress { get; }
    public GrpcChannel Channel { get; }
    public IServiceProvider Services => _app.Services;

    /// <param name="connectionName">The name the service reads (ConnectionStrings:&lt;name&gt;); defaults to the database name.</param>
    /// <param name="extraArgs">More settings (--Key=value); they win over the ones above.</param>
    public static async Task<ServiceHost> StartAsync(Func<string[], WebApplication> build, Infrastructure infra, string name, string database,
        string? connectionName = null, IEnumerable<string>? extraArgs = null)
    {
        var port = FreePort();
        string[] args =
        [
            $"--ConnectionStrings:{connectionName ?? database}={infra.Postgres!.ConnectionString(database)}",
            $"--ConnectionStrings:cache={infra.Redis!.ConnectionString}",
            $"--ConnectionStrings:messaging={infra.RabbitMq!.AmqpUri}",
            $"--Kestrel:Endpoints:http:Url=http://127.0.0.1:{port}",
            "--Kestrel:Endpoints:http:Protocols=Http2",
            $"--OTEL_SERVICE_NAME={name}",
            "--Logging:LogLevel:Default=Warning",
            "--Outbox:PollInterval=00:00:00.200",
            // Messaging timings shortened for tests (the scenarios they serve still last longer than the old retry window).
            "--Outbox:MaxUnreadableAttempts=4",
            "--Messaging:Parking:FirstDelay=00:00:01",
            "--Messaging:Parking:MaxDelay=00:00:05",
            "--Messaging:Parking:SweepInterval=00:00:00.200",
            "--Messaging:Consumer:OutageMaxDelay=00:00:02",
            .. extraArgs ?? [],
        ];
        var app = build(args);
        await app.StartAsync();
        return new ServiceHost(app, new Uri($"http://127.0.0.1:{port}"));
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        Channel.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
