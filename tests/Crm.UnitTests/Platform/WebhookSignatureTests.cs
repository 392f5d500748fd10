using System.Text;
using Crm.Messaging.Webhooks;

namespace Crm.UnitTests.Platform;

/// <summary>The receiver's side of the webhook signature: what it accepts and what it must refuse.</summary>
public sealed class WebhookSignatureTests
{
    private const string Secret = "whsec_test-0123456789";
    private static readonly byte[] Body = Encoding.UTF8.GetBytes("""{"id":"0193b1c0-0000-7000-8000-000000000001","type":"OrderPaid","data":{"amountPaid":1288.00}}""");
    private static readonly DateTimeOffset Now = new(2026, 11, 26, 10, 0, 0, TimeSpan.Zero);

    [Fact]
    public void The_signature_is_hex_HMAC_SHA256_of_timestamp_dot_body_with_the_secret()
    {
        var timestamp = Now.ToUnixTimeSeconds();
        var expected = Convert.ToHexStringLower(System.Security.Cryptography.HMACSHA256.HashData(
            Encoding.UTF8.GetBytes(Secret), Encoding.UTF8.GetBytes($"{timestamp}.").Concat(Body).ToArray()));
        Assert.Equal("v1=" + expected, WebhookSignature.Sign(Secret, timestamp, Body));
        Assert.Equal(1_795_687_200, timestamp);
    }

    [Fact]
    public void A_fresh_untouched_request_verifies()
    {
        var ts = Now.ToUnixTimeSeconds();
        var signature = WebhookSignature.Sign(Secret, ts, Body);
        Assert.True(WebhookSignature.Verify(Secret, ts.ToString(), signature, Body, Now));
        // Clocks a little apart are fine: 4 min 59 s either way.
        Assert.True(WebhookSignature.Verify(Secret, ts.ToString(), signature, Body, Now.AddSeconds(299)));
        Assert.True(WebhookSignature.Verify(Secret, ts.ToString(), signature, Body, Now.AddSeconds(-299)));
    }

    [Fact]
    public void A_tampered_body_fails()
    {
        var ts = Now.ToUnixTimeSeconds();
        var signature = WebhookSignature.Sign(Secret, ts, Body);
        var tampered = Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(Body).Replace("1288.00", "9288.00"));
        Assert.False(WebhookSignature.Verify(Secret, ts.ToString(), signature, tampered, Now));
        Assert.False(WebhookSignature.Verify(Secret, ts.ToString(), signature, [.. Body, (byte)' '], Now));
    }

    [Fact]
    public void A_timestamp_older_than_5_minutes_fails_even_with_a_valid_signature()
    {
        var old = Now.AddMinutes(-5).AddSeconds(-1).ToUnixTimeSeconds();
        Assert.False(WebhookSignature.Verify(Secret, old.ToString(), WebhookSignature.Sign(Secret, old, Body), Body, Now));
        var future = Now.AddMinutes(5).AddSeconds(1).ToUnixTimeSeconds();
        Assert.False(WebhookSignature.Verify(Secret, future.ToString(), WebhookSignature.Sign(Secret, future, Body), Body, Now));
    }

    [Fact]
    public void A_changed_timestamp_another_secret_or_missing_headers_fail()
    {
        var ts = Now.ToUnixTimeSeconds();
        var signature = WebhookSignature.Sign(Secret, ts, Body);
        Assert.False(WebhookSignature.Verify(Secret, (ts + 1).ToString(), signature, Body, Now));
        Assert.False(WebhookSignature.Verify("whsec_someone-else-000", ts.ToString(), signature, Body, Now));
        Assert.False(WebhookSignature.Verify(Secret, null, signature, Body, Now));
        Assert.False(WebhookSignature.Verify(Secret, ts.ToString(), null, Body, Now));
        Assert.False(WebhookSignature.Verify(Secret, "yesterday", signature, Body, Now));
        Assert.False(WebhookSignature.Verify(Secret, ts.ToString(), signature[..^1], Body, Now));
    }
}
