using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Npgsql;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// The Aspire service-defaults shape: one call per service for telemetry, health, service discovery and
/// resilient outgoing clients. Services run unchanged under a real Aspire AppHost.
/// </summary>
public static class ServiceDefaultsExtensions
{
    private const string HealthEndpointPath = "/health";
    private const string AlivenessEndpointPath = "/alive";

    public static TBuilder AddServiceDefaults<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.ConfigureOpenTelemetry();
        builder.AddDefaultHealthChecks();
        builder.Services.AddServiceDiscovery();
        builder.Services.ConfigureHttpClientDefaults(http =>
        {
            http.AddStandardResilienceHandler();
            http.AddServiceDiscovery();
        });
        builder.Services.AddSingleton(TimeProvider.System);
        return builder;
    }

    /// <summary>
    /// OTLP export is on only when the AppHost (or a deployment) says where to: <c>OTEL_EXPORTER_OTLP_ENDPOINT</c>.
    /// Libraries that add their own sources and meters (AddMessaging) ask this too.
    /// </summary>
    public static bool ExportsTelemetry(this IHostApplicationBuilder builder) =>
        !string.IsNullOrWhiteSpace(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]);

    public static TBuilder ConfigureOpenTelemetry<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.Logging.AddOpenTelemetry(logging =>
        {
            logging.IncludeFormattedMessage = true;
            logging.IncludeScopes = true;
        });

        // Without an exporter, spans and metrics would go nowhere: no instrumentation is registered, so no request,
        // command or message creates and tags Activities for nothing (a few % of a write's CPU, bench/NOTES.md).
        // Requests still get an Activity from ASP.NET Core for log correlation and the outbox's trace_parent.
        if (!builder.ExportsTelemetry()) return builder;

        builder.Services.AddOpenTelemetry()
            .WithMetrics(metrics =>
            {
                metrics
                    .AddAspNetCoreInstrumentation()
                    .AddHttpClientInstrumentation()
                    .AddRuntimeInstrumentation()
                    .AddMeter("Npgsql", "MassTransit");
                // Instruments recorded on every request, command or socket read that the dashboard does not show (it
                // reads http.server.request.duration, pool use, outbox, relay and consumer figures): not enabled, so
                // they cost nothing where they are recorded.
                foreach (var name in PerOperationInstrumentsNotShown) metrics.AddView(name, MetricStreamConfiguration.Drop);
            })
            .WithTracing(tracing => tracing
                .AddSource(builder.Environment.ApplicationName)
                // MassTransit's consume spans continue the trace of the relay's "outbox publish" span (whose id the relay
                // sends; MassTransit's own send span is not made). AddMessaging adds both sources too; Npgsql's are added
                // by AddNpgsql below.
                .AddSource("MassTransit")
                .AddAspNetCoreInstrumentation(o =>
                    o.Filter = ctx => !ctx.Request.Path.StartsWithSegments(HealthEndpointPath)
                                      && !ctx.Request.Path.StartsWithSegments(AlivenessEndpointPath))
                // One client span per outgoing gRPC call: without this, HttpClient's span of the same request sat under it.
                .AddGrpcClientInstrumentation(o => o.SuppressDownstreamInstrumentation = true)
                .AddHttpClientInstrumentation()
                .AddNpgsql())
            .UseOtlpExporter();

        return builder;
    }

    /// <summary>See <see cref="ConfigureOpenTelemetry{TBuilder}"/>.</summary>
    private static readonly string[] PerOperationInstrumentsNotShown =
    [
        "kestrel.queued_requests",                                 // every HTTP/2 stream
        "http.server.active_requests",                             // every request, twice
        "aspnetcore.routing.match_attempts",                       // every request
        "aspnetcore.authentication.authenticate.duration",         // every request
        "aspnetcore.authorization.attempts",                       // every request
        "aspnetcore.rate_limiting.request_lease.duration",         // every request
        "aspnetcore.rate_limiting.active_request_leases",          // every request, twice
        "http.client.active_requests",                             // every outgoing call, twice
        "http.client.request.time_in_queue",                       // every outgoing call
        "db.client.operation.duration",                            // every command (the dashboard times commands by their spans)
        "db.client.operation.npgsql.executing",                    // every command, twice
        "db.client.operation.npgsql.bytes_read",                   // every socket read
        "db.client.operation.npgsql.bytes_written",                // every socket write
    ];

    public static TBuilder AddDefaultHealthChecks<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.Services.AddHealthChecks()
            .AddCheck("self", () => HealthCheckResult.Healthy(), ["live"]);
        return builder;
    }

    /// <summary>/health: every check (ready to take traffic). /alive: only the live checks (restart me if failing).</summary>
    public static WebApplication MapDefaultEndpoints(this WebApplication app)
    {
        app.MapHealthChecks(HealthEndpointPath, new HealthCheckOptions { ResponseWriter = HealthResponse.WriteAsync }).AllowAnonymous();
        app.MapHealthChecks(AlivenessEndpointPath, new HealthCheckOptions
        {
            Predicate = r => r.Tags.Contains("live"),
            ResponseWriter = HealthResponse.WriteAsync,
        }).AllowAnonymous();
        foreach (var endpoints in app.Services.GetServices<DefaultEndpoints>()) endpoints.Map(app);
        return app;
    }
}

/// <summary>
/// Endpoints a shared library (e.g. messaging's crm.ops.v1.MessagingAdmin) adds to every service that registers it;
/// <see cref="ServiceDefaultsExtensions.MapDefaultEndpoints"/> maps them.
/// </summary>
public sealed record DefaultEndpoints(Action<Microsoft.AspNetCore.Routing.IEndpointRouteBuilder> Map);
