namespace Crm.Messaging.Webhooks;

/// <summary>Webhook delivery (section <c>Messaging:Webhooks</c>).</summary>
public sealed class WebhookOptions
{
    /// <summary>How often the dispatcher looks for endpoints with events to send.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How long one POST may take before it counts as failed.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Delay after the first failed attempt; doubles with each further failure up to <see cref="MaxRetryDelay"/>.</summary>
    public TimeSpan FirstRetryDelay { get; set; } = TimeSpan.FromSeconds(10);

    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromMinutes(30);

    /// <summary>An endpoint failing without a success for this long is disabled.</summary>
    public TimeSpan DisableAfter { get; set; } = TimeSpan.FromDays(1);

    /// <summary>Endpoints delivered to at once by one instance.</summary>
    public int MaxConcurrentEndpoints { get; set; } = 16;

    /// <summary>How long an instance holds an endpoint; renewed with every delivery.</summary>
    public TimeSpan Lease { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// Endpoint URLs must be https://. Unset: required everywhere but in the Development environment (the AppHost's local
    /// suite), where a receiver on the developer's machine speaks plain http.
    /// </summary>
    public bool? RequireHttps { get; set; }

    /// <summary>
    /// Networks (CIDR, e.g. 127.0.0.0/8) webhooks may reach although they are not public (see <see cref="WebhookAddressPolicy"/>):
    /// a local receiver for the suite or tests. Empty (the default): only public addresses.
    /// </summary>
    public List<string> AllowedPrivateNetworks { get; set; } = [];

    /// <summary>Keys that encrypt the endpoints' signing secrets at rest, by id: base64 of 32 bytes (see <see cref="WebhookSecrets"/>).</summary>
    public Dictionary<string, string> SecretKeys { get; set; } = [];

    /// <summary>The key new secrets are encrypted with (and old ones moved to); may be left out when there is one key.</summary>
    public string? SecretKeyId { get; set; }

    public string? CurrentSecretKeyId() => SecretKeyId is { Length: > 0 } id ? id : SecretKeys.Count == 1 ? SecretKeys.Keys.Single() : null;

    /// <summary>Null when every allowed network is a CIDR; else which is not.</summary>
    public string? NetworkProblem() =>
        AllowedPrivateNetworks.FirstOrDefault(n => !System.Net.IPNetwork.TryParse(n.Trim(), out _)) is { } bad
            ? $"Messaging:Webhooks:AllowedPrivateNetworks: '{bad}' is not a network in CIDR notation (e.g. 127.0.0.0/8, ::1/128)."
            : null;

    /// <summary>Empty when the keys are usable; else what is wrong (no key at all is allowed: creating an endpoint then says so).</summary>
    public string? SecretKeyProblem()
    {
        foreach (var (id, value) in SecretKeys)
        {
            // Letters, digits and '_' only: a key id is part of an environment variable name (Messaging__Webhooks__SecretKeys__<id>).
            if (id.Length is 0 or > 32 || !id.All(c => char.IsAsciiLetterOrDigit(c) || c == '_'))
                return $"Messaging:Webhooks:SecretKeys: '{id}' is not a key id (1-32 of A-Z a-z 0-9 _).";
            var bytes = new byte[64];
            if (!Convert.TryFromBase64String(value, bytes, out var n) || n != 32)
                return $"Messaging:Webhooks:SecretKeys:{id} must be base64 of 32 bytes.";
        }
        if (SecretKeys.Count > 1 && SecretKeyId is not { Length: > 0 }) return "Messaging:Webhooks:SecretKeyId must name the current one of the SecretKeys.";
        if (SecretKeyId is { Length: > 0 } current && !SecretKeys.ContainsKey(current))
            return $"Messaging:Webhooks:SecretKeyId '{current}' is not one of the SecretKeys.";
        return null;
    }

    public TimeSpan RetryDelay(int failures) =>
        TimeSpan.FromMilliseconds(Math.Min(MaxRetryDelay.TotalMilliseconds,
            FirstRetryDelay.TotalMilliseconds * Math.Pow(2, Math.Clamp(failures - 1, 0, 30))));
}

/// <summary>Pruning of change_events (section <c>Messaging:ChangeEvents</c>).</summary>
public sealed class ChangeEventRetentionOptions
{
    /// <summary>Change events (and delivered webhook log rows) older than this are deleted, unless an enabled endpoint still needs them.</summary>
    public TimeSpan Retention { get; set; } = TimeSpan.FromDays(7);

    public TimeSpan PruneInterval { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Rows deleted per statement, so pruning never holds long locks.</summary>
    public int PruneBatchSize { get; set; } = 10_000;
}
