using Crm.ServiceDefaults.Security;
using Grpc.Core;

namespace Crm.Bench;

/// <summary>
/// The bench's own token issuer: the in-process services validate with its public key, and every bench
/// channel sends an admin token, so the figures include authentication and authorization on every call.
/// </summary>
public static class BenchAuth
{
    private const string Issuer = "crm-bench";
    private static readonly System.Security.Cryptography.ECDsa Key = DevTokens.NewKey();

    public static string[] ServiceArgs =>
    [
        $"--Auth:Issuer={Issuer}",
        $"--Auth:Audience={DevTokens.DefaultAudience}",
        $"--Auth:SigningKeys:0={DevTokens.PublicKey(Key)}",
    ];

    public static ChannelCredentials Credentials()
    {
        var token = DevTokens.Create(Key, Issuer, DevTokens.DefaultAudience, Roles.Admin, lifetime: TimeSpan.FromHours(12));
        return ChannelCredentials.Create(ChannelCredentials.Insecure, CallCredentials.FromInterceptor((_, metadata) =>
        {
            metadata.Add("Authorization", "Bearer " + token);
            return Task.CompletedTask;
        }));
    }
}
