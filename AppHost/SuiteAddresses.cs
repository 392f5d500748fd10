using System.Text.Json;

namespace Crm.AppHost;

/// <summary>
/// The running suite's service addresses, in <c>addresses.json</c> of the data folder (next to <c>auth/</c> with the
/// development keys), so tools such as <c>./crm import</c> find the services without being told their ports. Written once
/// every resource is ready, with the AppHost's pid (a reader treats a file whose pid is gone as a suite not running),
/// and deleted when the AppHost stops.
/// </summary>
public static class SuiteAddresses
{
    public static string FilePath(string dataDirectory) => Path.Combine(dataDirectory, "addresses.json");

    /// <summary>{"pid": 123, "services": {"customer": {"grpc": "http://127.0.0.1:5001", "web": ..., "health": ...}}}</summary>
    public static void Write(string dataDirectory, IEnumerable<ProjectResource> projects)
    {
        var content = new
        {
            pid = Environment.ProcessId,
            services = projects.ToDictionary(p => p.Name, p => new { grpc = p.HttpUrl, web = p.WebUrl, health = p.HealthUrl }),
        };
        var path = FilePath(dataDirectory);
        Directory.CreateDirectory(dataDirectory);
        var temporary = path + ".tmp";
        File.WriteAllText(temporary, JsonSerializer.Serialize(content, new JsonSerializerOptions { WriteIndented = true }));
        File.Move(temporary, path, overwrite: true); // a reader never sees half a file
    }

    /// <summary>Deletes the file if it is still this AppHost's (another one may have started on the same folder since).</summary>
    public static void Delete(string dataDirectory)
    {
        var path = FilePath(dataDirectory);
        try
        {
            if (!File.Exists(path)) return;
            using var json = JsonDocument.Parse(File.ReadAllText(path));
            if (json.RootElement.TryGetProperty("pid", out var pid) && pid.GetInt32() == Environment.ProcessId) File.Delete(path);
        }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException or InvalidOperationException) { }
    }
}
