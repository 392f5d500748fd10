namespace Crm.AppHost.Hosting;

/// <summary>
/// A .NET service run as <c>dotnet &lt;its built dll&gt;</c> from its project folder, with three
/// Kestrel endpoints: <c>http</c> (gRPC, HTTP/2), <c>web</c> (HTTP/JSON and gRPC-Web, HTTP/1.1) and
/// <c>management</c> (/health and /alive, HTTP/1.1).
/// </summary>
public sealed class ProjectResource(string name, string projectPath) : Resource(name), IResourceWithEnvironmentContract
{
    public override string Type => "Project";

    /// <summary>Full path of the .csproj.</summary>
    public string ProjectPath { get; } = projectPath;
    public string ProjectDirectory => Path.GetDirectoryName(ProjectPath)!;

    /// <summary>Resources whose connection information this project receives.</summary>
    public List<IResourceWithEnvironmentContract> References { get; } = [];

    /// <summary>Extra variables set with WithEnvironment.</summary>
    public Dictionary<string, string> Environment { get; } = [];

    /// <summary>OpenTelemetry service.instance.id, stable for the AppHost's lifetime.</summary>
    public string InstanceId { get; } = Guid.NewGuid().ToString();

    public int HttpPort { get; set; }
    public int ManagementPort { get; set; }
    /// <summary>HTTP/1.1 for browsers and plain HTTP clients: HTTP/JSON (transcoded RPCs) and gRPC-Web.</summary>
    public int WebPort { get; set; }
    public string HttpUrl => $"http://127.0.0.1:{HttpPort}";
    public string WebUrl => $"http://127.0.0.1:{WebPort}";
    public string ManagementUrl => $"http://127.0.0.1:{ManagementPort}";
    public string HealthUrl => ManagementUrl + "/health";

    /// <summary>Service discovery for projects that reference this one: services__name__http__0.</summary>
    public void AddReferenceEnvironment(IDictionary<string, string?> env)
    {
        env[$"services__{Name}__http__0"] = HttpUrl;
        env[EnvName.Of(Name, "HTTP")] = HttpUrl;
    }
}
