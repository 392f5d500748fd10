using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Crm.Messaging.Webhooks;

/// <summary>
/// The webhook signature scheme, small enough for a receiver to copy. The sender adds
/// <c>Crm-Webhook-Timestamp: &lt;unix seconds&gt;</c> and <c>Crm-Webhook-Signature: v1=&lt;hex&gt;</c>, where hex is
/// lower-case HMAC-SHA256, keyed with the endpoint's secret (its UTF-8 bytes), of
/// <c>"&lt;timestamp&gt;.&lt;body&gt;"</c> (the body's exact bytes). A receiver recomputes it over the raw body,
/// compares in constant time, and rejects a timestamp more than <see cref="Tolerance"/> away from its clock, so a
/// captured request cannot be replayed later.
/// </summary>
public static class WebhookSignature
{
    public const string IdHeader = "Crm-Webhook-Id";
    public const string TimestampHeader = "Crm-Webhook-Timestamp";
    public const string SignatureHeader = "Crm-Webhook-Signature";
    public const string EventTypeHeader = "Crm-Webhook-Event";
    public static readonly TimeSpan Tolerance = TimeSpan.FromMinutes(5);

    /// <summary>The Crm-Webhook-Signature header value for <paramref name="body"/> sent at <paramref name="timestamp"/>.</summary>
    public static string Sign(string secret, long timestamp, ReadOnlySpan<byte> body)
    {
        var prefix = Encoding.UTF8.GetBytes(timestamp.ToString(CultureInfo.InvariantCulture) + ".");
        var signed = new byte[prefix.Length + body.Length];
        prefix.CopyTo(signed, 0);
        body.CopyTo(signed.AsSpan(prefix.Length));
        return "v1=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), signed));
    }

    /// <summary>
    /// True when <paramref name="signatureHeader"/> is the signature of <paramref name="body"/> at
    /// <paramref name="timestampHeader"/> and that timestamp is within <see cref="Tolerance"/> of <paramref name="now"/>.
    /// </summary>
    public static bool Verify(string secret, string? timestampHeader, string? signatureHeader, ReadOnlySpan<byte> body, DateTimeOffset now)
    {
        if (!long.TryParse(timestampHeader, NumberStyles.None, CultureInfo.InvariantCulture, out var timestamp)) return false;
        if (Math.Abs(now.ToUnixTimeSeconds() - timestamp) > Tolerance.TotalSeconds) return false;
        if (signatureHeader is null) return false;
        return CryptographicOperations.FixedTimeEquals(
            Encoding.ASCII.GetBytes(Sign(secret, timestamp, body)), Encoding.ASCII.GetBytes(signatureHeader.Trim()));
    }
}
