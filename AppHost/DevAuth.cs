using System.Globalization;
using System.Security.Cryptography;
using Crm.ServiceDefaults.Security;
using Microsoft.Extensions.Configuration;

namespace Crm.AppHost;

/// <summary>
/// Authentication for the local suite. The AppHost keeps a development signing key (ECDSA P-256, PEM,
/// file mode 600) in its data folder, created on first run, and gives every service only the public half
/// (Auth__Issuer, Auth__Audience, Auth__SigningKeys__0). <c>token</c> (run by <c>./crm token</c>) signs a
/// token with it. When the AppHost is given Auth:Authority (a real OIDC provider), it passes Auth:Authority,
/// Auth:Issuer and Auth:Audience through instead and makes no key.
/// </summary>
public static class DevAuth
{
    public const string Issuer = "crm-apphost-dev";
    public const string Audience = DevTokens.DefaultAudience;
    private static ECDsa? _key;

    public static string KeyPath(string dataDirectory) => Path.Combine(dataDirectory, "auth", "dev-signing-key.pem");

    /// <summary>The Auth settings every service gets.</summary>
    public static IResourceBuilder<ProjectResource> WithDevelopmentAuth(this IResourceBuilder<ProjectResource> project)
    {
        var configuration = project.ApplicationBuilder.Configuration;
        if (configuration["Auth:Authority"] is { Length: > 0 } authority)
            return project.WithEnvironment("Auth__Authority", authority)
                .WithEnvironment("Auth__Issuer", configuration["Auth:Issuer"] ?? authority)
                .WithEnvironment("Auth__Audience", configuration["Auth:Audience"] ?? Audience);
        _key ??= LoadOrCreate(project.ApplicationBuilder);
        // The service's own identity for calls to other services (ServiceClients): role system, subject its name.
        // 30 days; a new one on every AppHost start.
        var serviceToken = DevTokens.Create(_key, Issuer, Audience, Roles.System, project.Resource.Name, TimeSpan.FromDays(30));
        return project.WithEnvironment("Auth__Issuer", Issuer)
            .WithEnvironment("Auth__Audience", Audience)
            .WithEnvironment("Auth__SigningKeys__0", DevTokens.PublicKey(_key))
            .WithEnvironment("Auth__ServiceToken", serviceToken);
    }

    private static ECDsa LoadOrCreate(DistributedApplicationBuilder builder)
    {
        var options = AppHostOptions.From(builder.Configuration, builder.AppHostDirectory);
        // An ephemeral run without a named folder has nowhere a token command could find the key: keep it in memory.
        if (options.Ephemeral && string.IsNullOrEmpty(builder.Configuration["AppHost:DataDirectory"])) return DevTokens.NewKey();
        var path = KeyPath(options.DataDirectory);
        if (File.Exists(path)) return Read(path);
        var folder = Path.GetDirectoryName(path)!;
        if (OperatingSystem.IsWindows()) Directory.CreateDirectory(folder);
        else Directory.CreateDirectory(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var key = DevTokens.NewKey();
        var file = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) file.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var writer = new StreamWriter(path, System.Text.Encoding.ASCII, file)) writer.Write(key.ExportPkcs8PrivateKeyPem());
        return key;
    }

    private static ECDsa Read(string path)
    {
        var key = ECDsa.Create();
        key.ImportFromPem(File.ReadAllText(path));
        return key;
    }

    /// <summary>
    /// <c>token --role &lt;role&gt; [--customer &lt;id&gt; | --user &lt;id&gt;] [--team &lt;team&gt;] [--system erp[,tmall]] [--ttl 1h] [--client &lt;id&gt;] [--AppHost:DataDirectory=...]</c>:
    /// prints a token signed with the development key of the same data folder <c>./crm run</c> uses.
    /// </summary>
    public static int TokenCommand(string[] args)
    {
        var builder = DistributedApplication.CreateBuilder(args);
        var config = builder.Configuration;
        var role = config["role"];
        if (string.IsNullOrEmpty(role) || !Roles.All.Contains(role))
            return Fail($"--role is required: one of {string.Join(", ", Roles.All)}.");
        var customer = config["customer"];
        if (role == Roles.Member && !Guid.TryParse(customer, out _))
            return Fail("--customer <customer id> is required for a member token (the token's subject).");
        if (customer is { Length: > 0 } && !Guid.TryParse(customer, out _)) return Fail("--customer must be a customer id (a UUID).");
        // Staff: the user id the services record as owner / author (default: the role's name), and the team a manager oversees.
        var user = config["user"];
        if (user is { Length: > 0 } && (role == Roles.Member || user.Length > 64))
            return Fail("--user is for staff roles (a member's subject is --customer), at most 64 characters.");
        var team = config["team"];
        if (team is { Length: > 64 }) return Fail("--team is at most 64 characters.");
        // A partner speaks for its source systems (the external ids it may push and read), e.g. --system erp,tmall.
        var systems = (config["system"] ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(SourceSystem.Normalize).Distinct().ToList();
        if (role == Roles.Partner && systems.Count == 0)
            return Fail("--system <name>[,<name>] is required for a partner token: the source systems it speaks for, e.g. erp.");
        if (systems.Count > 0 && role != Roles.Partner) return Fail("--system is for partner tokens.");
        if (!systems.All(SourceSystem.IsValid))
            return Fail("--system names are at most 32 characters of a-z, 0-9, '-' and '_'.");
        if (!TryParseTtl(config["ttl"] ?? "1h", out var ttl) || ttl <= TimeSpan.Zero || ttl > TimeSpan.FromDays(30))
            return Fail("--ttl must be like 90s, 30m, 1h or 7d (at most 30d).");

        var options = AppHostOptions.From(config, builder.AppHostDirectory);
        var path = KeyPath(options.DataDirectory);
        if (!File.Exists(path))
            return Fail($"No development signing key at {path}: start the suite once (./crm run) with the same data folder (--AppHost:DataDirectory=...).");
        using var key = Read(path);
        var subject = customer is { Length: > 0 } ? customer : user is { Length: > 0 } ? user : null;
        Console.WriteLine(DevTokens.Create(key, Issuer, Audience, role, subject, ttl, clientId: config["client"], team: team is { Length: > 0 } ? team : null,
            systems: systems));
        return 0;
    }

    private static bool TryParseTtl(string text, out TimeSpan ttl)
    {
        ttl = default;
        text = text.Trim();
        if (text.Length >= 2 && double.TryParse(text[..^1], NumberStyles.Float, CultureInfo.InvariantCulture, out var n))
        {
            switch (char.ToLowerInvariant(text[^1]))
            {
                case 's': ttl = TimeSpan.FromSeconds(n); return true;
                case 'm': ttl = TimeSpan.FromMinutes(n); return true;
                case 'h': ttl = TimeSpan.FromHours(n); return true;
                case 'd': ttl = TimeSpan.FromDays(n); return true;
            }
        }
        return TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out ttl);
    }

    private static int Fail(string message)
    {
        Console.Error.WriteLine("crm token: " + message);
        return 2;
    }
}
