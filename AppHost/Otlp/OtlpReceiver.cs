using System.Net;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OtlpLogs = OpenTelemetry.Proto.Collector.Logs.V1;
using OtlpMetrics = OpenTelemetry.Proto.Collector.Metrics.V1;
using OtlpTraces = OpenTelemetry.Proto.Collector.Trace.V1;

namespace Crm.AppHost.Otlp;

/// <summary>
/// The dashboard's OTLP endpoints on loopback, as Aspire's dashboard has them: OTLP/gRPC (HTTP/2, the collector's
/// TraceService, LogsService and MetricsService) and OTLP/HTTP with protobuf bodies (<c>POST /v1/traces</c>,
/// <c>/v1/logs</c>, <c>/v1/metrics</c>). Everything goes into the <see cref="TelemetryStore"/>.
/// </summary>
internal sealed class OtlpReceiver(TelemetryStore store) : IAsyncDisposable
{
    private WebApplication? _app;

    public string GrpcEndpoint { get; private set; } = "";
    public string HttpEndpoint { get; private set; } = "";

    public async Task StartAsync()
    {
        var (grpcPort, httpPort) = (Crm.Launcher.Ports.GetFree(), Crm.Launcher.Ports.GetFree());
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton<IHostLifetime, NoConsoleLifetime>();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = 64 * 1024 * 1024;
            k.Listen(IPAddress.Loopback, grpcPort, l => l.Protocols = HttpProtocols.Http2);
            k.Listen(IPAddress.Loopback, httpPort, l => l.Protocols = HttpProtocols.Http1AndHttp2);
        });
        builder.Services.AddGrpc(o => o.MaxReceiveMessageSize = 64 * 1024 * 1024);
        builder.Services.AddSingleton(store);
        var app = builder.Build();
        app.MapGrpcService<RawTraceReceiver>().RequireHost($"*:{grpcPort}");
        app.MapGrpcService<LogsReceiver>().RequireHost($"*:{grpcPort}");
        app.MapGrpcService<MetricsReceiver>().RequireHost($"*:{grpcPort}");
        app.MapPost("/v1/traces", (HttpRequest r) => HttpTraces(r, store)).RequireHost($"*:{httpPort}");
        app.MapPost("/v1/logs", (HttpRequest r) => Http(r, OtlpLogs.ExportLogsServiceRequest.Parser, store.Add, new OtlpLogs.ExportLogsServiceResponse()))
            .RequireHost($"*:{httpPort}");
        app.MapPost("/v1/metrics", (HttpRequest r) => Http(r, OtlpMetrics.ExportMetricsServiceRequest.Parser, store.Add, new OtlpMetrics.ExportMetricsServiceResponse()))
            .RequireHost($"*:{httpPort}");
        await app.StartAsync();
        _app = app;
        GrpcEndpoint = $"http://127.0.0.1:{grpcPort}";
        HttpEndpoint = $"http://127.0.0.1:{httpPort}";
    }

    /// <summary>OTLP/HTTP: a protobuf body in, a protobuf response out (JSON bodies are answered 415).</summary>
    private static async Task<IResult> Http<TRequest>(HttpRequest request, MessageParser<TRequest> parser, Action<TRequest> add, IMessage response)
        where TRequest : IMessage<TRequest>
    {
        if (request.ContentType?.StartsWith("application/x-protobuf", StringComparison.OrdinalIgnoreCase) != true)
            return Results.StatusCode(StatusCodes.Status415UnsupportedMediaType);
        using var body = new MemoryStream();
        await request.Body.CopyToAsync(body);
        TRequest message;
        try { message = parser.ParseFrom(body.ToArray()); }
        catch (InvalidProtocolBufferException) { return Results.BadRequest(); }
        add(message);
        return Results.Bytes(response.ToByteArray(), "application/x-protobuf");
    }

    /// <summary>OTLP/HTTP traces: the body's bytes go to the store as they are (see <see cref="OtlpSpans"/>).</summary>
    private static async Task<IResult> HttpTraces(HttpRequest request, TelemetryStore store)
    {
        if (request.ContentType?.StartsWith("application/x-protobuf", StringComparison.OrdinalIgnoreCase) != true)
            return Results.StatusCode(StatusCodes.Status415UnsupportedMediaType);
        using var body = new MemoryStream();
        await request.Body.CopyToAsync(body);
        try { store.AddTraces(body.GetBuffer().AsSpan(0, (int)body.Length)); }
        catch (InvalidDataException) { return Results.BadRequest(); }
        return Results.Bytes(new OtlpTraces.ExportTraceServiceResponse().ToByteArray(), "application/x-protobuf");
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is null) return;
        await _app.StopAsync(TimeSpan.FromSeconds(2));
        await _app.DisposeAsync();
    }

    private sealed class LogsReceiver(TelemetryStore store) : OtlpLogs.LogsService.LogsServiceBase
    {
        public override Task<OtlpLogs.ExportLogsServiceResponse> Export(OtlpLogs.ExportLogsServiceRequest request, ServerCallContext context)
        {
            store.Add(request);
            return Task.FromResult(new OtlpLogs.ExportLogsServiceResponse());
        }
    }

    private sealed class MetricsReceiver(TelemetryStore store) : OtlpMetrics.MetricsService.MetricsServiceBase
    {
        public override Task<OtlpMetrics.ExportMetricsServiceResponse> Export(OtlpMetrics.ExportMetricsServiceRequest request, ServerCallContext context)
        {
            store.Add(request);
            return Task.FromResult(new OtlpMetrics.ExportMetricsServiceResponse());
        }
    }

    private sealed class NoConsoleLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
