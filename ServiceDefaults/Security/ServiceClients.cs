using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Crm.ServiceDefaults.Security;

/// <summary>
/// A gRPC client for another service of the suite, calling as this service (role <see cref="Roles.System"/>).
/// The address comes from service discovery (<c>services__&lt;name&gt;__http__0</c>, set by the AppHost); the
/// bearer token from <c>Auth:ServiceToken</c> — the AppHost mints one per service from its development key;
/// a deployment puts the service's client-credentials token from its identity provider there.
/// </summary>
public static class ServiceClients
{
    public static IHttpClientBuilder AddServiceClient<TClient>(this IHostApplicationBuilder builder, string serviceName) where TClient : class
    {
        // Grpc.Net.Client logs every failed call's status message at Information, and another service's messages can
        // hold a phone or e-mail ("The phone +86... is already registered"): personal data must not reach the logs.
        // The code making a call logs its outcome, without the message.
        builder.Logging.AddFilter("Grpc.Net.Client.Internal.GrpcCall", LogLevel.Warning);
        return builder.Services.AddGrpcClient<TClient>(o => o.Address = new Uri("http://" + serviceName))
            .AddCallCredentials((_, metadata, services) =>
            {
                var token = services.GetRequiredService<IConfiguration>()["Auth:ServiceToken"];
                if (!string.IsNullOrEmpty(token)) metadata.Add("Authorization", "Bearer " + token);
                return Task.CompletedTask;
            })
            // Loopback / cluster-internal plain HTTP/2; a deployment with TLS between services needs no change here.
            .ConfigureChannel(o => o.UnsafeUseInsecureChannelCallCredentials = true);
    }
}
