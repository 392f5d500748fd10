using System.Security.Cryptography;
using System.Text;
using Grpc.Core;
using Microsoft.Extensions.Options;

namespace Crm.Messaging.Webhooks;

/// <summary>
/// The endpoints' signing secrets at rest: AES-256-GCM under a key from configuration
/// (<c>Messaging:Webhooks:SecretKeys:&lt;id&gt;</c>, base64 of 32 bytes; new secrets use <c>SecretKeyId</c>), stored as
/// base64(nonce | ciphertext | tag) with the key's id next to it, and bound to the endpoint's id (associated data) so a
/// stored secret cannot be moved to another endpoint. To rotate: add a key, point SecretKeyId at it and keep the old one
/// until the service has started once (<see cref="WebhookStore.ReencryptSecretsAsync"/> moves every row to the current key).
/// </summary>
public sealed class WebhookSecrets(IOptions<WebhookOptions> options)
{
    private const int NonceSize = 12;
    private const int TagSize = 16;
    private readonly Dictionary<string, byte[]> _keys = options.Value.SecretKeys.ToDictionary(k => k.Key, k => Convert.FromBase64String(k.Value));

    /// <summary>The key new secrets are encrypted with; null when none is configured.</summary>
    public string? CurrentKeyId { get; } = options.Value.CurrentSecretKeyId();

    public (string KeyId, string Stored) Protect(Guid endpointId, string secret)
    {
        if (CurrentKeyId is null)
            throw new RpcException(new Status(StatusCode.FailedPrecondition,
                "Webhook secrets cannot be stored: no key is configured (Messaging:Webhooks:SecretKeys and SecretKeyId; the AppHost sets them)."));
        var plain = Encoding.UTF8.GetBytes(secret);
        var sealedBytes = new byte[NonceSize + plain.Length + TagSize];
        var nonce = sealedBytes.AsSpan(0, NonceSize);
        RandomNumberGenerator.Fill(nonce);
        using var aes = new AesGcm(_keys[CurrentKeyId], TagSize);
        aes.Encrypt(nonce, plain, sealedBytes.AsSpan(NonceSize, plain.Length), sealedBytes.AsSpan(NonceSize + plain.Length), endpointId.ToByteArray());
        return (CurrentKeyId, Convert.ToBase64String(sealedBytes));
    }

    /// <summary>The secret in clear; a row without a key id is from before encryption and still in clear.</summary>
    public string Reveal(Guid endpointId, string? keyId, string stored)
    {
        if (keyId is null) return stored;
        if (!_keys.TryGetValue(keyId, out var key))
            throw new InvalidOperationException($"The secret of webhook endpoint {endpointId} is under key '{keyId}', which is not configured (Messaging:Webhooks:SecretKeys).");
        var sealedBytes = Convert.FromBase64String(stored);
        var plain = new byte[sealedBytes.Length - NonceSize - TagSize];
        using var aes = new AesGcm(key, TagSize);
        aes.Decrypt(sealedBytes.AsSpan(0, NonceSize), sealedBytes.AsSpan(NonceSize, plain.Length), sealedBytes.AsSpan(NonceSize + plain.Length), plain,
            endpointId.ToByteArray());
        return Encoding.UTF8.GetString(plain);
    }

    /// <summary>A new key for <c>SecretKeys</c>: base64 of 32 random bytes.</summary>
    public static string NewKey() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
}
