using System.Security.Cryptography;
using Microsoft.Extensions.Configuration;

namespace Crm.AppHost;

/// <summary>
/// The key the services encrypt webhook signing secrets with at rest (Messaging:Webhooks:SecretKeys / SecretKeyId, see
/// Messaging/Webhooks/WebhookSecrets). Given the AppHost its own <c>Messaging:Webhooks:SecretKeys</c> (to rotate: add a
/// key, point SecretKeyId at it, keep the old one until the services have started once), it passes them on; otherwise it
/// keeps a development key in its data folder next to the token signing key (file mode 600), created on first run.
/// </summary>
public static class DevWebhookKey
{
    public const string KeyId = "dev1"; // letters and digits: it becomes part of an environment variable name

    public static string KeyPath(string dataDirectory) => Path.Combine(dataDirectory, "auth", "webhook-secret-key");

    private static Dictionary<string, string>? _keys;
    private static string? _current;

    public static IResourceBuilder<ProjectResource> WithWebhookSecretKey(this IResourceBuilder<ProjectResource> project)
    {
        if (_keys is null) (_keys, _current) = Load(project.ApplicationBuilder);
        foreach (var (id, key) in _keys) project.WithEnvironment($"Messaging__Webhooks__SecretKeys__{id}", key);
        if (_current is not null) project.WithEnvironment("Messaging__Webhooks__SecretKeyId", _current);
        // The local suite may deliver webhooks to a receiver on this machine (a service in production reaches public addresses only).
        project.WithEnvironment("Messaging__Webhooks__AllowedPrivateNetworks__0", "127.0.0.0/8");
        project.WithEnvironment("Messaging__Webhooks__AllowedPrivateNetworks__1", "::1/128");
        return project;
    }

    private static (Dictionary<string, string>, string?) Load(DistributedApplicationBuilder builder)
    {
        var section = builder.Configuration.GetSection("Messaging:Webhooks");
        var configured = section.GetSection("SecretKeys").GetChildren().Where(c => c.Value is { Length: > 0 }).ToDictionary(c => c.Key, c => c.Value!);
        if (configured.Count > 0) return (configured, section["SecretKeyId"] is { Length: > 0 } id ? id : null);

        var options = AppHostOptions.From(builder.Configuration, builder.AppHostDirectory);
        if (options.Ephemeral && string.IsNullOrEmpty(builder.Configuration["AppHost:DataDirectory"]))
            return (new() { [KeyId] = NewKey() }, KeyId); // a throw-away suite: its database goes with it
        var path = KeyPath(options.DataDirectory);
        if (!File.Exists(path))
        {
            var folder = Path.GetDirectoryName(path)!;
            if (OperatingSystem.IsWindows()) Directory.CreateDirectory(folder);
            else Directory.CreateDirectory(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            var file = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (!OperatingSystem.IsWindows()) file.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            using var writer = new StreamWriter(path, System.Text.Encoding.ASCII, file);
            writer.Write(NewKey());
        }
        return (new() { [KeyId] = File.ReadAllText(path).Trim() }, KeyId);
    }

    private static string NewKey() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
}
