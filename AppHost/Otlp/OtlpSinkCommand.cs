using System.Text.Json;

namespace Crm.AppHost.Otlp;

/// <summary>
/// <c>otlp-sink</c>: the dashboard's OTLP receiver and store alone, without the suite, for the telemetry benchmark
/// (bench/run.sh telemetry): services export to it exactly as they export to the AppHost. Prints one JSON line with
/// its endpoints, then one JSON line of counters for every line read on stdin; exits when stdin closes.
/// </summary>
internal static class OtlpSinkCommand
{
    public static async Task<int> RunAsync()
    {
        var store = new TelemetryStore(new TelemetryLimits());
        await using var receiver = new OtlpReceiver(store);
        await receiver.StartAsync();
        Console.WriteLine(JsonSerializer.Serialize(new { grpc = receiver.GrpcEndpoint, http = receiver.HttpEndpoint }));
        while (await Console.In.ReadLineAsync() is not null)
        {
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                spansReceived = store.SpansReceived, spansEvicted = store.SpansDropped, serverSpans = store.ServerSpansReceived,
                logsReceived = store.LogsReceived, logsEvicted = store.LogsDropped,
                pointsReceived = store.PointsReceived, pointsDropped = store.PointsDropped,
            }));
        }
        return 0;
    }
}
