using System.Security.Cryptography;
using Crm.Messaging.Webhooks;
using Grpc.Core;
using Microsoft.Extensions.Options;

namespace Crm.UnitTests.Platform;

/// <summary>Webhook signing secrets at rest: AES-GCM under a configured key, readable after the key rotates.</summary>
public sealed class WebhookSecretsTests
{
    private static readonly string Old = WebhookSecrets.NewKey();
    private static readonly string New = WebhookSecrets.NewKey();
    private static readonly Guid Endpoint = Guid.Parse("0193b1c0-0000-7000-8000-0000000000aa");

    private static WebhookSecrets With(Dictionary<string, string> keys, string? current = null) =>
        new(Options.Create(new WebhookOptions { SecretKeys = keys, SecretKeyId = current }));

    [Fact]
    public void A_secret_sealed_under_the_old_key_still_opens_after_rotation_and_new_ones_use_the_new_key()
    {
        var (oldId, sealedOld) = With(new() { ["k2025"] = Old }).Protect(Endpoint, "whsec_erp-0123456789");
        Assert.Equal("k2025", oldId);
        Assert.DoesNotContain("whsec", sealedOld);

        var rotated = With(new() { ["k2025"] = Old, ["k2026"] = New }, current: "k2026");
        Assert.Equal("whsec_erp-0123456789", rotated.Reveal(Endpoint, "k2025", sealedOld));
        var (newId, sealedNew) = rotated.Protect(Endpoint, "whsec_erp-0123456789");
        Assert.Equal("k2026", newId);
        Assert.NotEqual(sealedOld, sealedNew);
        Assert.Equal("whsec_erp-0123456789", rotated.Reveal(Endpoint, "k2026", sealedNew));
        // A row from before encryption (no key id) is read as it is.
        Assert.Equal("whsec_clear", rotated.Reveal(Endpoint, null, "whsec_clear"));
        // The old key gone from configuration: the service says which key it lacks.
        var error = Assert.Throws<InvalidOperationException>(() => With(new() { ["k2026"] = New }).Reveal(Endpoint, "k2025", sealedOld));
        Assert.Contains("'k2025'", error.Message);
    }

    [Fact]
    public void A_sealed_secret_opens_only_for_its_own_endpoint_and_only_untampered()
    {
        var secrets = With(new() { ["k1"] = New });
        var (id, stored) = secrets.Protect(Endpoint, "whsec_tmall-0123456789");
        Assert.ThrowsAny<CryptographicException>(() => secrets.Reveal(Guid.NewGuid(), id, stored));
        var bytes = Convert.FromBase64String(stored);
        bytes[14] ^= 1;
        Assert.ThrowsAny<CryptographicException>(() => secrets.Reveal(Endpoint, id, Convert.ToBase64String(bytes)));
    }

    [Fact]
    public void Without_a_key_creating_a_secret_is_FAILED_PRECONDITION_naming_the_setting()
    {
        var error = Assert.Throws<RpcException>(() => With([]).Protect(Endpoint, "whsec_x-0123456789"));
        Assert.Equal(StatusCode.FailedPrecondition, error.StatusCode);
        Assert.Contains("Messaging:Webhooks:SecretKeys", error.Status.Detail);
    }

    [Theory]
    [InlineData("dev-1", "AAAA", null, "'dev-1' is not a key id")]
    [InlineData("k1", "c2hvcnQ=", null, "SecretKeys:k1 must be base64 of 32 bytes")]
    [InlineData("k1", null, "k9", "SecretKeyId 'k9' is not one of the SecretKeys")]
    public void Unusable_key_settings_are_refused_at_start_with_the_reason(string id, string? key, string? current, string expected)
    {
        var options = new WebhookOptions { SecretKeys = new() { [id] = key ?? New }, SecretKeyId = current };
        Assert.Contains(expected, options.SecretKeyProblem());
        Assert.Null(new WebhookOptions { SecretKeys = new() { ["k1"] = Old, ["k2"] = New }, SecretKeyId = "k2" }.SecretKeyProblem());
        Assert.Contains("must name the current one", new WebhookOptions { SecretKeys = new() { ["k1"] = Old, ["k2"] = New } }.SecretKeyProblem());
    }
}
