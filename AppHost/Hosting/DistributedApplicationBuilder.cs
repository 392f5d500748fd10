using System.Reflection;
using Microsoft.Extensions.Configuration;

namespace Crm.AppHost.Hosting;

/// <summary>Collects the resources of the application, like Aspire's IDistributedApplicationBuilder.</summary>
public sealed class DistributedApplicationBuilder
{
    private readonly List<Resource> _resources = [];

    internal DistributedApplicationBuilder(string[] args)
    {
        AppHostDirectory = Metadata("AppHostProjectDirectory") ?? AppContext.BaseDirectory;
        Configuration = new ConfigurationManager();
        Configuration.AddJsonFile(Path.Combine(AppHostDirectory, "appsettings.json"), optional: true);
        Configuration.AddEnvironmentVariables();
        Configuration.AddCommandLine(args);
    }

    /// <summary>Environment variables and command-line arguments (<c>--AppHost:Ephemeral=true</c>, <c>--ConnectionStrings:postgres=...</c>).</summary>
    public ConfigurationManager Configuration { get; }

    /// <summary>The AppHost's project folder: AddProject paths are relative to it.</summary>
    public string AppHostDirectory { get; }

    public IReadOnlyList<Resource> Resources => _resources;

    public IResourceBuilder<T> AddResource<T>(T resource) where T : Resource
    {
        if (_resources.Any(r => string.Equals(r.Name, resource.Name, StringComparison.OrdinalIgnoreCase)))
            throw new InvalidOperationException($"A resource named '{resource.Name}' already exists.");
        _resources.Add(resource);
        return new ResourceBuilder<T>(resource, this);
    }

    /// <summary>A Postgres server; started from the Debian package unless ConnectionStrings:&lt;name&gt; is given.</summary>
    public IResourceBuilder<PostgresServerResource> AddPostgres(string name) => AddResource(new PostgresServerResource(name));

    /// <summary>A Redis server; started unless ConnectionStrings:&lt;name&gt; is given.</summary>
    public IResourceBuilder<RedisResource> AddRedis(string name) => AddResource(new RedisResource(name));

    /// <summary>A RabbitMQ broker; started unless ConnectionStrings:&lt;name&gt; is given.</summary>
    public IResourceBuilder<RabbitMQResource> AddRabbitMQ(string name) => AddResource(new RabbitMQResource(name));

    /// <summary>A .NET service; <paramref name="projectPath"/> is its .csproj, relative to the AppHost folder.</summary>
    public IResourceBuilder<ProjectResource> AddProject(string name, string projectPath) =>
        AddResource(new ProjectResource(name, Path.GetFullPath(Path.Combine(AppHostDirectory, projectPath))));

    public DistributedApplication Build() => new(AppHostOptions.From(Configuration, AppHostDirectory), _resources);

    internal static string? Metadata(string key) =>
        typeof(DistributedApplicationBuilder).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().FirstOrDefault(a => a.Key == key)?.Value;
}
