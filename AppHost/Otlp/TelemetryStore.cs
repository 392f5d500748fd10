using System.Globalization;
using Google.Protobuf;
using Google.Protobuf.Collections;
using OpenTelemetry.Proto.Common.V1;
using OpenTelemetry.Proto.Metrics.V1;
using OtlpLogs = OpenTelemetry.Proto.Collector.Logs.V1;
using OtlpMetrics = OpenTelemetry.Proto.Collector.Metrics.V1;

namespace Crm.AppHost.Otlp;

/// <summary>Limits of the in-memory telemetry (section <c>AppHost:Telemetry</c>); the oldest items go first.</summary>
public sealed record TelemetryLimits(int MaxSpans = 50_000, int MaxLogs = 20_000, int MaxPointsPerSeries = 330, int MaxSeries = 5_000);

public sealed record LogData(
    long Id, DateTimeOffset Time, string Resource, string Level, string Category, string Message, string? TraceId, string? SpanId,
    IReadOnlyList<KeyValuePair<string, string>> Attributes);

/// <summary>One point of a series: a counter or gauge value, or a cumulative histogram (count, sum, buckets).</summary>
public sealed record MetricPoint(DateTimeOffset Time, double Value, ulong Count, double Sum, ulong[]? Buckets);

/// <summary>One metric stream: resource + metric name + attributes, its points oldest first.</summary>
public sealed class MetricSeries(string resource, string name, string unit, string kind, string attributes, IReadOnlyDictionary<string, string> attributeMap)
{
    private readonly List<MetricPoint> _points = [];
    private MetricPoint? _cumulative; // running total for delta streams
    public string Resource { get; } = resource;
    public string Name { get; } = name;
    public string Unit { get; } = unit;
    /// <summary>gauge, counter, updown or histogram.</summary>
    public string Kind { get; } = kind;
    public string Attributes { get; } = attributes;
    public IReadOnlyDictionary<string, string> AttributeMap { get; } = attributeMap;
    public double[] Bounds { get; internal set; } = [];

    /// <summary>Adds a point; true when the oldest point was dropped to make room.</summary>
    internal bool Add(MetricPoint point, bool delta, int max)
    {
        lock (_points)
        {
            if (delta)
            {
                var last = _cumulative;
                point = last is null ? point : point with
                {
                    Value = last.Value + point.Value,
                    Count = last.Count + point.Count,
                    Sum = last.Sum + point.Sum,
                    Buckets = point.Buckets is { } b && last.Buckets is { } lb && lb.Length == b.Length ? [.. b.Zip(lb, (x, y) => x + y)] : point.Buckets,
                };
                _cumulative = point;
            }
            _points.Add(point);
            if (_points.Count <= max) return false;
            _points.RemoveRange(0, _points.Count - max);
            return true;
        }
    }

    public MetricPoint[] Points()
    {
        lock (_points) return [.. _points];
    }
}

/// <summary>
/// What the OTLP receiver got: spans, structured logs and metric series, each bounded (<see cref="TelemetryLimits"/>),
/// the oldest dropped first and counted.
/// </summary>
public sealed class TelemetryStore(TelemetryLimits limits)
{
    private readonly Queue<SpanData> _spans = new();
    private readonly Utf8Cache _strings = new();
    private readonly LinkedList<LogData> _logs = new();
    private readonly Dictionary<string, MetricSeries> _series = [];
    private readonly Dictionary<string, long> _serverSpans = [];
    private long _logIds;

    public TelemetryLimits Limits { get; } = limits;
    public long SpansReceived { get; private set; }
    public long SpansDropped { get; private set; }
    /// <summary>Server spans (one per incoming request) received per resource: what a benchmark compares with the calls it made.</summary>
    public IReadOnlyDictionary<string, long> ServerSpansReceived
    {
        get { lock (_spans) return new Dictionary<string, long>(_serverSpans); }
    }
    public long LogsReceived { get; private set; }
    public long LogsDropped { get; private set; }
    public long PointsReceived { get; private set; }
    public long PointsDropped { get; private set; }

    public IReadOnlyList<SpanData> Spans()
    {
        lock (_spans) return [.. _spans];
    }

    public IReadOnlyList<LogData> Logs()
    {
        lock (_logs) return [.. _logs];
    }

    public IReadOnlyList<MetricSeries> Series()
    {
        lock (_series) return [.. _series.Values];
    }

    /// <summary>Adds the spans of an OTLP ExportTraceServiceRequest; <see cref="InvalidDataException"/> when it is malformed.</summary>
    public void AddTraces(ReadOnlySpan<byte> request)
    {
        var spans = OtlpSpans.Read(request, _strings);
        lock (_spans)
        {
            foreach (var span in spans)
            {
                _spans.Enqueue(span);
                if (_spans.Count > Limits.MaxSpans) { _spans.Dequeue(); SpansDropped++; }
                if (span.Kind == "Server") _serverSpans[span.Resource] = _serverSpans.GetValueOrDefault(span.Resource) + 1;
            }
            SpansReceived += spans.Count;
        }
    }

    public void Add(OtlpLogs.ExportLogsServiceRequest request)
    {
        lock (_logs)
        {
            foreach (var rl in request.ResourceLogs)
            {
                var resource = ResourceName(rl.Resource?.Attributes);
                foreach (var sl in rl.ScopeLogs)
                    foreach (var l in sl.LogRecords)
                    {
                        var attributes = Flatten(l.Attributes);
                        var time = l.TimeUnixNano != 0 ? l.TimeUnixNano : l.ObservedTimeUnixNano;
                        var message = l.Body is { } body ? Text(body) : "";
                        _logs.AddLast(new LogData(++_logIds, Time(time), resource, Level(l.SeverityNumber, l.SeverityText),
                            sl.Scope?.Name ?? "", message, l.TraceId.IsEmpty ? null : Hex(l.TraceId), l.SpanId.IsEmpty ? null : Hex(l.SpanId),
                            attributes));
                        LogsReceived++;
                    }
            }
            while (_logs.Count > Limits.MaxLogs) { _logs.RemoveFirst(); LogsDropped++; }
        }
    }

    public void Add(OtlpMetrics.ExportMetricsServiceRequest request)
    {
        foreach (var rm in request.ResourceMetrics)
        {
            var resource = ResourceName(rm.Resource?.Attributes);
            foreach (var sm in rm.ScopeMetrics)
                foreach (var m in sm.Metrics)
                {
                    switch (m.DataCase)
                    {
                        case Metric.DataOneofCase.Gauge:
                            foreach (var p in m.Gauge.DataPoints) AddPoint(resource, m, "gauge", p.Attributes, new MetricPoint(Time(p.TimeUnixNano), Number(p), 0, 0, null), false, null);
                            break;
                        case Metric.DataOneofCase.Sum:
                            foreach (var p in m.Sum.DataPoints)
                                AddPoint(resource, m, m.Sum.IsMonotonic ? "counter" : "updown", p.Attributes, new MetricPoint(Time(p.TimeUnixNano), Number(p), 0, 0, null),
                                    m.Sum.AggregationTemporality == AggregationTemporality.Delta, null);
                            break;
                        case Metric.DataOneofCase.Histogram:
                            foreach (var p in m.Histogram.DataPoints)
                                AddPoint(resource, m, "histogram", p.Attributes, new MetricPoint(Time(p.TimeUnixNano), 0, p.Count, p.HasSum ? p.Sum : 0, [.. p.BucketCounts]),
                                    m.Histogram.AggregationTemporality == AggregationTemporality.Delta, [.. p.ExplicitBounds]);
                            break;
                        default:
                            lock (_series) PointsDropped++; // exponential histograms and summaries are not kept
                            break;
                    }
                }
        }
    }

    private void AddPoint(string resource, Metric metric, string kind, RepeatedField<KeyValue> attributes, MetricPoint point, bool delta, double[]? bounds)
    {
        var flat = Flatten(attributes);
        var key = string.Join(", ", flat.OrderBy(a => a.Key, StringComparer.Ordinal).Select(a => $"{a.Key}={a.Value}"));
        MetricSeries series;
        lock (_series)
        {
            PointsReceived++;
            var id = resource + "\n" + metric.Name + "\n" + key;
            if (!_series.TryGetValue(id, out series!))
            {
                if (_series.Count >= Limits.MaxSeries) { PointsDropped++; return; }
                series = new MetricSeries(resource, metric.Name, metric.Unit, kind, key, flat.GroupBy(a => a.Key).ToDictionary(g => g.Key, g => g.First().Value));
                _series[id] = series;
            }
        }
        if (bounds is not null) series.Bounds = bounds;
        if (series.Add(point, delta, Limits.MaxPointsPerSeries)) lock (_series) PointsDropped++;
    }

    private static double Number(NumberDataPoint p) => p.ValueCase == NumberDataPoint.ValueOneofCase.AsInt ? p.AsInt : p.AsDouble;

    private static string ResourceName(RepeatedField<KeyValue>? attributes) =>
        attributes?.FirstOrDefault(a => a.Key == "service.name")?.Value is { } v ? Text(v) : "unknown";

    internal static List<KeyValuePair<string, string>> Flatten(RepeatedField<KeyValue> attributes) =>
        [.. attributes.Select(a => new KeyValuePair<string, string>(a.Key, a.Value is null ? "" : Text(a.Value)))];

    public static string Text(AnyValue value) => value.ValueCase switch
    {
        AnyValue.ValueOneofCase.StringValue => value.StringValue,
        AnyValue.ValueOneofCase.BoolValue => value.BoolValue ? "true" : "false",
        AnyValue.ValueOneofCase.IntValue => value.IntValue.ToString(CultureInfo.InvariantCulture),
        AnyValue.ValueOneofCase.DoubleValue => value.DoubleValue.ToString(CultureInfo.InvariantCulture),
        AnyValue.ValueOneofCase.ArrayValue => "[" + string.Join(", ", value.ArrayValue.Values.Select(Text)) + "]",
        AnyValue.ValueOneofCase.KvlistValue => "{" + string.Join(", ", value.KvlistValue.Values.Select(kv => kv.Key + "=" + (kv.Value is null ? "" : Text(kv.Value)))) + "}",
        AnyValue.ValueOneofCase.BytesValue => Convert.ToBase64String(value.BytesValue.ToByteArray()),
        _ => "",
    };

    private static string Level(OpenTelemetry.Proto.Logs.V1.SeverityNumber number, string text) => (int)number switch
    {
        >= 21 => "Critical",
        >= 17 => "Error",
        >= 13 => "Warning",
        >= 9 => "Information",
        >= 5 => "Debug",
        >= 1 => "Trace",
        _ => text is { Length: > 0 } ? text : "Information",
    };

    private static string Hex(ByteString bytes) => Convert.ToHexStringLower(bytes.Span);

    private static DateTimeOffset Time(ulong unixNano) =>
        unixNano == 0 ? DateTimeOffset.UtcNow : DateTimeOffset.UnixEpoch.AddTicks((long)(unixNano / 100));
}
