using System.Diagnostics.Metrics;

namespace Crm.Bench;

/// <summary>
/// The load generator's HttpClient meters ("System.Net.Http" to the handler) under a name no service listens to. The
/// services run in the bench's process, and with export on their meter provider would otherwise record a
/// http.client.request.duration point (and connection counts) for every call the bench makes: a cost of the client,
/// which in its own process never falls on a service.
/// </summary>
public sealed class LoadClientMeters : IMeterFactory
{
    public static readonly LoadClientMeters Instance = new();
    private readonly Meter _meter = new("Crm.Bench.LoadClient");

    public Meter Create(MeterOptions options) => _meter;

    public void Dispose() { }
}
