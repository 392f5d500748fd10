using Crm.Launcher;
using Microsoft.Extensions.Configuration;

namespace Crm.AppHost.Hosting;

/// <summary>
/// The AppHost's own settings (section <c>AppHost</c>): DataDirectory (default &lt;repo&gt;/.data, kept
/// between runs), Ephemeral (throw-away folder, deleted on exit, durability off), DashboardUrl
/// (default http://127.0.0.1:18888; port 0 picks a free port), Durable (default: not Ephemeral; off,
/// Postgres runs with fsync and synchronous_commit off, and a crash of Postgres itself, not only of
/// the machine, loses the last commits), OtlpEndpoint (else
/// OTEL_EXPORTER_OTLP_ENDPOINT; given to the services only when set) and OwnerPid (stop when that
/// process is gone: <c>./crm run</c> passes the pid of its <c>dotnet run</c>). Without OtlpEndpoint the
/// services export to the dashboard's own OTLP receiver.
/// </summary>
/// <remarks>
/// <see cref="DataDirectory"/> is where the data really is: as root, a folder the postgres and
/// rabbitmq users cannot reach (a clone in /root) is replaced by /var/lib/crm-suite/&lt;hash&gt;
/// (<see cref="DataLocation"/>); <see cref="RequestedDataDirectory"/> is the one asked for.
/// </remarks>
public sealed record AppHostOptions(
    IConfiguration Configuration,
    string RequestedDataDirectory,
    string DataDirectory,
    bool Ephemeral,
    bool Durable,
    string DashboardUrl,
    string? OtlpEndpoint,
    string BuildConfiguration,
    string TargetFramework,
    int? OwnerPid)
{
    public bool DataRelocated => DataDirectory != RequestedDataDirectory;

    /// <summary>OTEL_EXPORTER_OTLP_PROTOCOL handed to the services: grpc (default, as Aspire) or http/protobuf (AppHost:OtlpProtocol).</summary>
    public string OtlpProtocol { get; init; } = "grpc";

    /// <summary>Limits of the dashboard's in-memory telemetry (AppHost:Telemetry:MaxSpans, MaxLogs, MaxPointsPerSeries, MaxSeries).</summary>
    public Crm.AppHost.Otlp.TelemetryLimits TelemetryLimits { get; init; } = new();

    /// <summary>The dashboard's login token (AppHost:DashboardToken); a random one per run when not set.</summary>
    public string? DashboardToken { get; init; }

    public static AppHostOptions From(IConfiguration configuration, string appHostDirectory)
    {
        var section = configuration.GetSection("AppHost");
        var ephemeral = section.GetValue<bool>("Ephemeral");
        var dataDirectory = section["DataDirectory"] is { Length: > 0 } configured
            ? Path.GetFullPath(configured)
            : ephemeral
                ? Path.Combine(Path.GetTempPath(), "crm-apphost-" + Guid.NewGuid().ToString("N")[..12])
                : Path.Combine(RepositoryRoot(appHostDirectory), ".data");
        var otlp = section["OtlpEndpoint"] is { Length: > 0 } o ? o : configuration["OTEL_EXPORTER_OTLP_ENDPOINT"];
        return new AppHostOptions(
            configuration,
            dataDirectory,
            DataLocation.Resolve(dataDirectory),
            ephemeral,
            section.GetValue<bool?>("Durable") ?? !ephemeral,
            section["DashboardUrl"] is { Length: > 0 } url ? url : "http://127.0.0.1:18888",
            string.IsNullOrWhiteSpace(otlp) ? null : otlp,
            DistributedApplicationBuilder.Metadata("Configuration") ?? "Debug",
            DistributedApplicationBuilder.Metadata("TargetFramework") ?? "net10.0",
            section.GetValue<int?>("OwnerPid") is > 0 and var owner ? owner : null)
        {
            OtlpProtocol = section["OtlpProtocol"] is "http/protobuf" ? "http/protobuf" : "grpc",
            TelemetryLimits = section.GetSection("Telemetry").Get<Crm.AppHost.Otlp.TelemetryLimits>() ?? new(),
            DashboardToken = section["DashboardToken"] is { Length: > 0 } token ? token : null,
        };
    }

    /// <summary>The folder holding Crm.sln, searched upwards from the AppHost project.</summary>
    private static string RepositoryRoot(string appHostDirectory)
    {
        for (var dir = new DirectoryInfo(appHostDirectory); dir is not null; dir = dir.Parent)
            if (dir.EnumerateFiles("*.sln").Any()) return dir.FullName;
        return Path.GetDirectoryName(appHostDirectory) ?? appHostDirectory;
    }
}
