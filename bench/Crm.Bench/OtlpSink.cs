using System.Diagnostics;
using System.Text.Json;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace Crm.Bench;

/// <summary>What the dashboard's receiver had taken in when asked (see AppHost/Otlp/OtlpSinkCommand.cs).</summary>
public sealed record SinkStats(
    long SpansReceived, long SpansEvicted, Dictionary<string, long> ServerSpans, long LogsReceived, long LogsEvicted,
    long PointsReceived, long PointsDropped);

/// <summary>Telemetry of a run: the receiver's counters against the calls the bench made to the customer service.</summary>
public sealed record TelemetryResult(string Endpoint, long CustomerCalls, long CustomerServerSpans, long LostServerSpans, SinkStats Sink, double SettleSeconds);

/// <summary>
/// The dashboard's OTLP receiver in its own process (<c>Crm.AppHost otlp-sink</c>), as the AppHost runs it beside the
/// services: the services export over OTLP/gRPC to it exactly as they do under <c>./crm run</c>.
/// </summary>
public sealed class OtlpSink : IAsyncDisposable
{
    private static readonly JsonSerializerOptions Json = new() { PropertyNameCaseInsensitive = true };
    private readonly Process _process;

    private OtlpSink(Process process, string grpcEndpoint) => (_process, GrpcEndpoint) = (process, grpcEndpoint);

    public string GrpcEndpoint { get; }

    /// <summary>The settings ProjectEnvironment gives every service when the dashboard receives telemetry.</summary>
    public string[] ServiceArgs =>
    [
        $"--OTEL_EXPORTER_OTLP_ENDPOINT={GrpcEndpoint}", "--OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
        "--OTEL_BSP_SCHEDULE_DELAY=1000", "--OTEL_BLRP_SCHEDULE_DELAY=1000", "--OTEL_METRIC_EXPORT_INTERVAL=1000",
        "--OTEL_TRACES_SAMPLER=always_on", "--OTEL_DOTNET_EXPERIMENTAL_OTLP_RETRY=in_memory",
    ];

    public static async Task<OtlpSink> StartAsync(string repoRoot, string tag, CancellationToken ct)
    {
        var appHost = Path.Combine(repoRoot, "AppHost", "bin", "Release", "net10.0", "Crm.AppHost.dll");
        if (!File.Exists(appHost)) throw new InvalidOperationException($"{appHost} is missing: bench/run.sh telemetry builds it.");
        var info = new ProcessStartInfo("dotnet") { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { appHost, "otlp-sink", tag }) info.ArgumentList.Add(a); // the tag lets the leftover check find it
        var process = Process.Start(info)!;
        var first = await process.StandardOutput.ReadLineAsync(ct) ?? throw new InvalidOperationException("otlp-sink exited before it listened.");
        using var endpoints = JsonDocument.Parse(first);
        return new OtlpSink(process, endpoints.RootElement.GetProperty("grpc").GetString()!);
    }

    public async Task<SinkStats> StatsAsync(CancellationToken ct)
    {
        await _process.StandardInput.WriteLineAsync("stats");
        await _process.StandardInput.FlushAsync(ct);
        var line = await _process.StandardOutput.ReadLineAsync(ct) ?? throw new InvalidOperationException("otlp-sink exited.");
        return JsonSerializer.Deserialize<SinkStats>(line, Json)!;
    }

    /// <summary>Waits until the customer service's server spans stop growing (the exporter flushes every second).</summary>
    public async Task<TelemetryResult> SettleAsync(long customerCalls, CancellationToken ct)
    {
        var watch = Stopwatch.StartNew();
        var last = await StatsAsync(ct);
        for (var still = 0; still < 3 && watch.Elapsed < TimeSpan.FromSeconds(30);)
        {
            await Task.Delay(1000, ct);
            var now = await StatsAsync(ct);
            still = now.SpansReceived == last.SpansReceived ? still + 1 : 0;
            last = now;
        }
        var server = last.ServerSpans.GetValueOrDefault("customer");
        return new TelemetryResult(GrpcEndpoint, customerCalls, server, Math.Max(0, customerCalls - server), last, watch.Elapsed.TotalSeconds);
    }

    public async ValueTask DisposeAsync()
    {
        try { _process.StandardInput.Close(); } catch (IOException) { }
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try { await _process.WaitForExitAsync(wait.Token); }
        catch (OperationCanceledException) { _process.Kill(entireProcessTree: true); }
        _process.Dispose();
    }
}

/// <summary>Counts the calls that completed (any status), so the server spans received can be checked against them.</summary>
public sealed class CallCounter : Interceptor
{
    private long _calls;
    public long Calls => Interlocked.Read(ref _calls);

    public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(
        TRequest request, ClientInterceptorContext<TRequest, TResponse> context, AsyncUnaryCallContinuation<TRequest, TResponse> continuation)
    {
        var call = continuation(request, context);
        return new AsyncUnaryCall<TResponse>(Counted(call.ResponseAsync), call.ResponseHeadersAsync, call.GetStatus, call.GetTrailers, call.Dispose);
    }

    private async Task<T> Counted<T>(Task<T> response)
    {
        try { return await response; }
        finally { Interlocked.Increment(ref _calls); }
    }
}

/// <summary>
/// The load generator's calls make no client telemetry of their own. It shares the process with the services, whose
/// tracer and meter providers listen process-wide: without this its gRPC and HttpClient activities were recorded (and,
/// with export on, sent as two extra "customer" spans per call), which a client in its own process never costs a service.
/// </summary>
public sealed class UntracedClient : Interceptor
{
    public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(
        TRequest request, ClientInterceptorContext<TRequest, TResponse> context, AsyncUnaryCallContinuation<TRequest, TResponse> continuation)
    {
        // The call starts (and captures this context) synchronously inside the continuation.
        using var _ = OpenTelemetry.SuppressInstrumentationScope.Begin();
        return continuation(request, context);
    }
}

