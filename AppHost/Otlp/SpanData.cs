namespace Crm.AppHost.Otlp;

/// <summary>
/// One span as the store keeps it: the fields lists, waterfalls and counts use, read when it arrived, and its encoded
/// protobuf, from which the other attributes are decoded only when a page shows them (<see cref="Attributes"/>).
/// </summary>
public sealed class SpanData
{
    private readonly ReadOnlyMemory<byte> _encoded;
    private readonly string? _route, _grpcStatus, _rpcGrpcStatus, _messageType;
    private IReadOnlyList<KeyValuePair<string, string>>? _attributes;

    internal SpanData(string traceId, string spanId, string? parentSpanId, string name, string kind, string resource, string scope,
        DateTimeOffset start, DateTimeOffset end, bool error, string? statusMessage, ReadOnlyMemory<byte> encoded,
        string? route, string? grpcStatus, string? rpcGrpcStatus, string? messageType)
    {
        (TraceId, SpanId, ParentSpanId, Name, Kind, Resource, Scope) = (traceId, spanId, parentSpanId, name, kind, resource, scope);
        (Start, End, Error, StatusMessage, _encoded) = (start, end, error, statusMessage, encoded);
        (_route, _grpcStatus, _rpcGrpcStatus, _messageType) = (route, grpcStatus, rpcGrpcStatus, messageType);
    }

    public string TraceId { get; }
    public string SpanId { get; }
    public string? ParentSpanId { get; }
    public string Name { get; }
    /// <summary>Server, Client, Producer, Consumer, Internal or Unspecified.</summary>
    public string Kind { get; }
    public string Resource { get; }
    public string Scope { get; }
    public DateTimeOffset Start { get; }
    public DateTimeOffset End { get; }
    public bool Error { get; }
    public string? StatusMessage { get; }
    public TimeSpan Duration => End - Start;

    /// <summary>Every attribute, decoded on first use (a trace's page, not the lists).</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Attributes =>
        _attributes ??= TelemetryStore.Flatten(OpenTelemetry.Proto.Trace.V1.Span.Parser.ParseFrom(_encoded.Span).Attributes);

    /// <summary>The attributes the dashboard filters and counts on are kept from arrival; others are decoded.</summary>
    public string? Attribute(string key) => key switch
    {
        "http.route" => _route,
        "grpc.status_code" => _grpcStatus,
        "rpc.grpc.status_code" => _rpcGrpcStatus,
        "messaging.message.type" => _messageType,
        _ => Attributes.FirstOrDefault(a => a.Key == key).Value,
    };
}
