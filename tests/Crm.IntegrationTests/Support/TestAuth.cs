using System.Security.Cryptography;
using Crm.ServiceDefaults.Security;
using Grpc.Core;
using Grpc.Net.Client;

namespace Crm.IntegrationTests.Support;

/// <summary>
/// The tests' token issuer: one ECDSA P-256 key for the test run, whose public half every ServiceHost
/// validates with (the same Auth settings the AppHost hands its services).
/// </summary>
public static class TestAuth
{
    public const string Issuer = "crm-tests";
    public const string Audience = "crm";
    public static readonly ECDsa Key = DevTokens.NewKey();
    public const string WebhookKeyId = "tests1";
    public static readonly string WebhookKey = Crm.Messaging.Webhooks.WebhookSecrets.NewKey();

    public static IEnumerable<string> Args =>
    [
        $"--Auth:Issuer={Issuer}",
        $"--Auth:Audience={Audience}",
        $"--Auth:SigningKeys:0={DevTokens.PublicKey(Key)}",
        // A small member budget, so RateLimitTests can exhaust it quickly (other tests stay far below it).
        "--RateLimits:member:PermitsPerSecond=5",
        "--RateLimits:member:Burst=30",
        "--GrpcWeb:AllowedOrigins:0=https://console.crm.test",
        // The service's own identity for calls to other services (ServiceClients), as the AppHost gives it.
        $"--Auth:ServiceToken={Token(Roles.System, "tests-service")}",
        // The key webhook secrets are encrypted with at rest, as the AppHost gives it.
        $"--Messaging:Webhooks:SecretKeys:{WebhookKeyId}={WebhookKey}",
        $"--Messaging:Webhooks:SecretKeyId={WebhookKeyId}",
    ];

    /// <param name="subject">A member's customer id, or a staff user id (default: the role's name).</param>
    /// <param name="team">The team claim of a sales manager or service supervisor.</param>
    /// <param name="systems">A partner's source systems (default for a partner: erp, the system the partner tests push as).</param>
    public static string Token(string role, string? subject = null, TimeSpan? lifetime = null, string? team = null, string[]? systems = null) =>
        DevTokens.Create(Key, Issuer, Audience, role, subject, lifetime ?? TimeSpan.FromHours(6), team: team,
            systems: systems ?? (role == Roles.Partner ? ["erp"] : null));

    /// <summary>A channel sending <paramref name="token"/> (none when null) as a bearer token on every call.</summary>
    public static GrpcChannel Channel(Uri address, string? token)
    {
        if (token is null) return GrpcChannel.ForAddress(address);
        var credentials = CallCredentials.FromInterceptor((_, metadata) =>
        {
            metadata.Add("Authorization", "Bearer " + token);
            return Task.CompletedTask;
        });
        return GrpcChannel.ForAddress(address, new GrpcChannelOptions
        {
            Credentials = ChannelCredentials.Create(ChannelCredentials.Insecure, credentials),
            UnsafeUseInsecureChannelCallCredentials = true, // loopback http in tests
        });
    }
}
