using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Crm.ServiceDefaults.Security;

/// <summary>
/// Development tokens for the local suite: ES256 (ECDSA P-256) JWTs signed with a key the AppHost keeps in
/// its data folder; services receive only the public key (Auth:SigningKeys). Plain BCL, no token library,
/// so the AppHost, the tests and the bench can mint tokens the same way.
/// </summary>
public static class DevTokens
{
    public const string DefaultIssuer = "crm-dev";
    public const string DefaultAudience = "crm";

    public static ECDsa NewKey() => ECDsa.Create(ECCurve.NamedCurves.nistP256);

    /// <summary>The public half as base64 SubjectPublicKeyInfo: the value of Auth:SigningKeys:0.</summary>
    public static string PublicKey(ECDsa key) => Convert.ToBase64String(key.ExportSubjectPublicKeyInfo());

    public static string Create(ECDsa key, string issuer, string audience, string role, string? subject = null,
        TimeSpan? lifetime = null, DateTimeOffset? now = null, string? clientId = null, DateTimeOffset? notBefore = null, string? team = null,
        IReadOnlyCollection<string>? systems = null)
    {
        var issuedAt = now ?? DateTimeOffset.UtcNow;
        var expires = issuedAt + (lifetime ?? TimeSpan.FromHours(1));
        var header = new Dictionary<string, object> { ["alg"] = "ES256", ["typ"] = "JWT", ["kid"] = KeyId(key) };
        var payload = new Dictionary<string, object>
        {
            ["iss"] = issuer,
            ["aud"] = audience,
            ["sub"] = subject ?? role,
            ["role"] = role,
            ["client_id"] = clientId ?? "crm-dev-" + role,
            ["iat"] = issuedAt.ToUnixTimeSeconds(),
            ["nbf"] = (notBefore ?? issuedAt).ToUnixTimeSeconds(),
            ["exp"] = expires.ToUnixTimeSeconds(),
            ["jti"] = Guid.NewGuid().ToString("N"),
        };
        if (team is not null) payload["team"] = team;
        if (systems is { Count: > 0 }) payload["systems"] = string.Join(' ', systems);
        var signingInput = Base64Url(JsonSerializer.SerializeToUtf8Bytes(header)) + "." + Base64Url(JsonSerializer.SerializeToUtf8Bytes(payload));
        // IEEE P1363 (r||s) is the JWS encoding of an ECDSA signature, and .NET's default.
        var signature = key.SignData(Encoding.ASCII.GetBytes(signingInput), HashAlgorithmName.SHA256);
        return signingInput + "." + Base64Url(signature);
    }

    /// <summary>A short stable key id: the first bytes of the public key's SHA-256.</summary>
    public static string KeyId(ECDsa key) => Base64Url(SHA256.HashData(key.ExportSubjectPublicKeyInfo())[..8]);

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
