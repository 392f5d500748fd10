using System.Net;
using System.Net.Sockets;
using Crm.Launcher;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Crm.IntegrationTests.Support;

/// <summary>
/// A service built by its own composition root and served by Kestrel on free loopback ports, configured
/// with the same keys the AppHost sets (ConnectionStrings__*, Kestrel endpoints).
/// </summary>
public sealed class ServiceHost : IAsyncDisposable
{
    private readonly WebApplication _app;

    private ServiceHost(WebApplication app, Uri grpcAddress, Uri webAddress)
    {
        _app = app;
        GrpcAddress = grpcAddress;
        WebAddress = webAddress;
        Channel = TestAuth.Channel(grpcAddress, TestAuth.Token(Crm.ServiceDefaults.Security.Roles.Admin));
    }

    public Uri GrpcAddress { get; }
    /// <summary>HTTP/1.1, as the AppHost's web endpoint: HTTP/JSON (transcoding) and gRPC-Web.</summary>
    public Uri WebAddress { get; }
    /// <summary>Calls with an admin token.</summary>
    public GrpcChannel Channel { get; }

    private readonly List<GrpcChannel> _channels = [];

    /// <summary>A channel with a token for <paramref name="role"/> (subject: the customer id for a member); disposed with the host.</summary>
    public GrpcChannel ChannelFor(string role, string? subject = null, string? team = null) =>
        Keep(TestAuth.Channel(GrpcAddress, TestAuth.Token(role, subject, team: team)));

    /// <summary>A channel sending <paramref name="token"/> as is (null: no token at all).</summary>
    public GrpcChannel ChannelWithToken(string? token) => Keep(TestAuth.Channel(GrpcAddress, token));

    private GrpcChannel Keep(GrpcChannel channel)
    {
        lock (_channels) _channels.Add(channel);
        return channel;
    }
    public IServiceProvider Services => _app.Services;

    /// <param name="connectionName">The name the service reads (ConnectionStrings:&lt;name&gt;); defaults to the database name.</param>
    /// <param name="extraArgs">More settings (--Key=value); they win over the ones above.</param>
    public static async Task<ServiceHost> StartAsync(Func<string[], WebApplication> build, Infrastructure infra, string name, string database,
        string? connectionName = null, IEnumerable<string>? extraArgs = null)
    {
        var port = FreePort();
        var webPort = FreePort();
        string[] args =
        [
            $"--ConnectionStrings:{connectionName ?? database}={infra.Postgres!.ConnectionString(database)}",
            $"--ConnectionStrings:cache={infra.Redis!.ConnectionString}",
            $"--ConnectionStrings:messaging={infra.RabbitMq!.AmqpUri}",
            $"--Kestrel:Endpoints:http:Url=http://127.0.0.1:{port}",
            "--Kestrel:Endpoints:http:Protocols=Http2",
            $"--Kestrel:Endpoints:web:Url=http://127.0.0.1:{webPort}",
            "--Kestrel:Endpoints:web:Protocols=Http1",
            $"--OTEL_SERVICE_NAME={name}",
            // Information and up reaches LogCapture (searched for personal data); the console stays at Warning.
            "--Logging:LogLevel:Default=Information",
            "--Logging:LogLevel:Microsoft=Warning",
            "--Logging:LogLevel:MassTransit=Warning",
            "--Logging:Console:LogLevel:Default=Warning",
            "--Outbox:PollInterval=00:00:00.200",
            // Messaging timings shortened for tests (the scenarios they serve still last longer than the old retry window).
            "--Outbox:MaxUnreadableAttempts=4",
            "--Messaging:Parking:FirstDelay=00:00:01",
            "--Messaging:Parking:MaxDelay=00:00:05",
            "--Messaging:Parking:SweepInterval=00:00:00.200",
            "--Messaging:Consumer:OutageMaxDelay=00:00:02",
            .. extraArgs ?? [],
            .. TestAuth.Args,
        ];
        var app = build(args);
        app.Services.GetRequiredService<Microsoft.Extensions.Logging.ILoggerFactory>().AddProvider(LogCapture.Instance);
        await app.StartAsync();
        return new ServiceHost(app, new Uri($"http://127.0.0.1:{port}"), new Uri($"http://127.0.0.1:{webPort}"));
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
        lock (_channels) foreach (var c in _channels) c.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
