namespace Crm.AppHost.Hosting;

/// <summary>The environment a project is started with: Aspire's contract, so services run unchanged under real Aspire.</summary>
internal static class ProjectEnvironment
{
    public static Dictionary<string, string?> For(ProjectResource project, AppHostOptions options)
    {
        var env = new Dictionary<string, string?>
        {
            ["ASPNETCORE_ENVIRONMENT"] = "Development",
            ["DOTNET_ENVIRONMENT"] = "Development",
            // Kestrel listens only where we say (inherited URL settings would add or move endpoints).
            ["ASPNETCORE_URLS"] = null, ["DOTNET_URLS"] = null, ["URLS"] = null,
            ["ASPNETCORE_HTTP_PORTS"] = null, ["ASPNETCORE_HTTPS_PORTS"] = null, ["HTTP_PORTS"] = null, ["HTTPS_PORTS"] = null,
            ["Kestrel__Endpoints__http__Url"] = project.HttpUrl,
            ["Kestrel__Endpoints__http__Protocols"] = "Http2",
            // Without TLS a port speaks either HTTP/2 (gRPC) or HTTP/1.1 (HTTP/JSON, gRPC-Web from a browser): one each.
            ["Kestrel__Endpoints__web__Url"] = project.WebUrl,
            ["Kestrel__Endpoints__web__Protocols"] = "Http1",
            ["Kestrel__Endpoints__management__Url"] = project.ManagementUrl,
            ["Kestrel__Endpoints__management__Protocols"] = "Http1",
            ["OTEL_SERVICE_NAME"] = project.Name,
            ["OTEL_RESOURCE_ATTRIBUTES"] = "service.instance.id=" + project.InstanceId,
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = options.OtlpEndpoint, // removed when not configured
            // As Aspire's AppHost in development: the protocol, and export every second so the dashboard is live.
            ["OTEL_EXPORTER_OTLP_PROTOCOL"] = options.OtlpEndpoint is null ? null : options.OtlpProtocol,
            ["OTEL_BLRP_SCHEDULE_DELAY"] = options.OtlpEndpoint is null ? null : "1000",
            ["OTEL_BSP_SCHEDULE_DELAY"] = options.OtlpEndpoint is null ? null : "1000",
            ["OTEL_METRIC_EXPORT_INTERVAL"] = options.OtlpEndpoint is null ? null : "1000",
            ["OTEL_TRACES_SAMPLER"] = options.OtlpEndpoint is null ? null : "always_on",
            ["OTEL_DOTNET_EXPERIMENTAL_OTLP_RETRY"] = options.OtlpEndpoint is null ? null : "in_memory",
            // Connection strings given to the AppHost itself are not for the services.
            ["ConnectionStrings__postgres"] = null, ["ConnectionStrings__cache"] = null, ["ConnectionStrings__messaging"] = null,
        };
        foreach (var reference in project.References) reference.AddReferenceEnvironment(env);
        foreach (var (name, value) in project.Environment) env[name] = value;
        return env;
    }

}
