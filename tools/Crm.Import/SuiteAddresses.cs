using System.Diagnostics;
using System.Text.Json;
using Crm.Launcher;

namespace Crm.Import;

/// <summary>
/// Reads the running suite's service addresses from the <c>addresses.json</c> the AppHost writes in its data folder
/// (AppHost/SuiteAddresses.cs) once every service is ready, and deletes when it stops.
/// </summary>
public static class SuiteAddresses
{
    /// <summary>The folder <c>./crm run</c> uses by default: &lt;repository&gt;/.data, where the servers really keep it (see DataLocation).</summary>
    public static string DefaultDataDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (dir.EnumerateFiles("*.sln").Any()) return DataLocation.Resolve(Path.Combine(dir.FullName, ".data"));
        return DataLocation.Resolve(Path.Combine(Environment.CurrentDirectory, ".data"));
    }

    /// <summary>
    /// The <paramref name="service"/>'s gRPC address, or why there is none: no file (the suite is not running), a file
    /// left by an AppHost that is gone, or a file without that service.
    /// </summary>
    public static (Uri? Address, string? Problem) Grpc(string dataDirectory, string service)
    {
        var path = Path.Combine(dataDirectory, "addresses.json");
        const string hint = "start it with ./crm run (same data folder), or give --address.";
        if (!File.Exists(path)) return (null, $"the suite is not running (no {path}): {hint}");
        try
        {
            using var json = JsonDocument.Parse(File.ReadAllText(path));
            var pid = json.RootElement.GetProperty("pid").GetInt32();
            if (!IsRunning(pid)) return (null, $"the suite that wrote {path} (AppHost pid {pid}) is not running any more: {hint}");
            if (json.RootElement.GetProperty("services").TryGetProperty(service, out var entry)
                && Uri.TryCreate(entry.GetProperty("grpc").GetString(), UriKind.Absolute, out var uri))
                return (uri, null);
            return (null, $"{path} names no '{service}' service: give --address.");
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException or IOException)
        {
            return (null, $"{path} is not a suite address file ({e.Message}): give --address.");
        }
    }

    private static bool IsRunning(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException) { return false; }
        catch (InvalidOperationException) { return false; }
    }
}
