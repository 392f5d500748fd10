namespace Crm.AppHost.Otlp;

/// <summary>One trace as the traces list shows it.</summary>
public sealed record TraceSummary(string TraceId, SpanData Root, DateTimeOffset Start, TimeSpan Duration, int SpanCount, int Errors, IReadOnlyList<string> Resources, bool OnlyDatabase);

/// <summary>Per gRPC method: calls per second (last 10 s), p50/p99 in ms and errors (last minute).</summary>
public sealed record MethodStats(string Resource, string Method, double CallsPerSecond, double? P50Ms, double? P99Ms, double ErrorsLastMinute, double[] RateHistory);

/// <summary>Reads the store: traces, rates and percentiles from cumulative series, the business pulse.</summary>
public static class TelemetryQueries
{
    public const string ServerDuration = "http.server.request.duration";

    public static IReadOnlyList<TraceSummary> Traces(IReadOnlyList<SpanData> spans) =>
        [.. spans.GroupBy(s => s.TraceId).Select(g =>
        {
            var list = g.ToList();
            var ids = list.Select(s => s.SpanId).ToHashSet();
            var root = list.Where(s => s.ParentSpanId is null || !ids.Contains(s.ParentSpanId)).OrderBy(s => s.Start).FirstOrDefault() ?? list[0];
            var start = list.Min(s => s.Start);
            return new TraceSummary(g.Key, root, start, list.Max(s => s.End) - start, list.Count, list.Count(s => s.Error),
                [.. list.Select(s => s.Resource).Distinct().Order()], list.All(s => s.Kind == "Client" && s.Scope == "Npgsql"));
        }).OrderByDescending(t => t.Start)];

    /// <summary>Spans of one trace in waterfall order (depth first from the roots, by start time) with their depth.</summary>
    public static IReadOnlyList<(SpanData Span, int Depth)> Waterfall(IEnumerable<SpanData> traceSpans)
    {
        var spans = traceSpans.OrderBy(s => s.Start).ToList();
        var ids = spans.Select(s => s.SpanId).ToHashSet();
        var children = spans.Where(s => s.ParentSpanId is not null && ids.Contains(s.ParentSpanId)).ToLookup(s => s.ParentSpanId!);
        var result = new List<(SpanData, int)>();
        void Walk(SpanData span, int depth)
        {
            result.Add((span, depth));
            foreach (var child in children[span.SpanId]) Walk(child, depth + 1);
        }
        foreach (var root in spans.Where(s => s.ParentSpanId is null || !ids.Contains(s.ParentSpanId))) Walk(root, 0);
        return result;
    }

    /// <summary>The cumulative value (count for histograms) of a series at <paramref name="time"/>: its last point at or before it.</summary>
    private static MetricPoint? At(MetricPoint[] points, DateTimeOffset time)
    {
        MetricPoint? found = null;
        foreach (var p in points)
        {
            if (p.Time > time) break;
            found = p;
        }
        return found;
    }

    /// <summary>Increase of a cumulative series between two times (a restart, which starts it again from zero, counts from zero).</summary>
    public static double Increase(MetricSeries series, DateTimeOffset from, DateTimeOffset to, bool histogram) =>
        Increase(series.Points(), from, to, histogram);

    /// <summary>
    /// Per-second rates of a cumulative series over <paramref name="windows"/> consecutive windows of <paramref name="seconds"/>
    /// ending at <paramref name="now"/>, oldest first: one pass over the points.
    /// </summary>
    public static double[] Rates(MetricPoint[] points, DateTimeOffset now, int windows, int seconds, bool histogram)
    {
        var rates = new double[windows];
        if (points.Length == 0) return rates;
        double? previous = null;
        var i = 0;
        double V(MetricPoint p) => histogram ? p.Count : p.Value;
        for (var w = -1; w < windows; w++)
        {
            var t = now.AddSeconds(-seconds * (windows - 1 - w));
            while (i < points.Length && points[i].Time <= t) i++;
            double? value = i == 0 ? null : V(points[i - 1]);
            if (w >= 0 && value is { } v)
            {
                var start = previous ?? V(points[0]);
                rates[w] = (v >= start ? v - start : v) / seconds;
            }
            previous = value;
        }
        return rates;
    }

    /// <summary>The last value at or before each of <paramref name="windows"/> times <paramref name="seconds"/> apart, oldest first.</summary>
    public static double[] Values(MetricPoint[] points, DateTimeOffset now, int windows, int seconds)
    {
        var values = new double[windows];
        var i = 0;
        for (var w = 0; w < windows; w++)
        {
            var t = now.AddSeconds(-seconds * (windows - 1 - w));
            while (i < points.Length && points[i].Time <= t) i++;
            values[w] = i == 0 ? 0 : points[i - 1].Value;
        }
        return values;
    }

    public static double Increase(MetricPoint[] points, DateTimeOffset from, DateTimeOffset to, bool histogram)
    {
        var end = At(points, to);
        if (end is null) return 0;
        var start = At(points, from);
        double V(MetricPoint p) => histogram ? p.Count : p.Value;
        if (start is null) return points[0].Time > from ? V(end) - V(points[0]) : 0;
        var d = V(end) - V(start);
        return d >= 0 ? d : V(end);
    }

    /// <summary>Bucket increases of a histogram series between two times.</summary>
    private static double[]? BucketIncrease(MetricSeries series, DateTimeOffset from, DateTimeOffset to)
    {
        var points = series.Points();
        var end = At(points, to);
        if (end?.Buckets is null) return null;
        var start = At(points, from) ?? (points[0].Time > from ? points[0] : null);
        if (start?.Buckets is null || start.Buckets.Length != end.Buckets.Length || start.Count > end.Count) return [.. end.Buckets.Select(b => (double)b)];
        return [.. end.Buckets.Zip(start.Buckets, (e, s) => (double)e - s)];
    }

    /// <summary>The quantile of bucketed values (linear within the bucket), in the bounds' unit.</summary>
    public static double? Quantile(double[] buckets, double[] bounds, double q)
    {
        var total = buckets.Sum();
        if (total <= 0) return null;
        var rank = q * total;
        double seen = 0;
        for (var i = 0; i < buckets.Length; i++)
        {
            if (seen + buckets[i] >= rank && buckets[i] > 0)
            {
                var lower = i == 0 ? 0 : bounds[Math.Min(i - 1, bounds.Length - 1)];
                var upper = i < bounds.Length ? bounds[i] : lower * 2; // the last bucket is open: guess
                return lower + (upper - lower) * ((rank - seen) / buckets[i]);
            }
            seen += buckets[i];
        }
        return bounds.Length > 0 ? bounds[^1] : null;
    }

    /// <summary>gRPC methods of every resource from <see cref="ServerDuration"/> (http.route /package.Service/Method).</summary>
    public static IReadOnlyList<MethodStats> Methods(IReadOnlyList<MetricSeries> series, IReadOnlyList<SpanData> spans, DateTimeOffset now, string? resource = null)
    {
        var durations = series.Where(s => s.Name == ServerDuration && s.Kind == "histogram" && (resource is null || s.Resource == resource)
                                          && s.AttributeMap.TryGetValue("http.route", out var route) && route.Count(c => c == '/') == 2)
            .GroupBy(s => (s.Resource, Method: s.AttributeMap["http.route"]));
        var errors = spans.Where(s => s.Kind == "Server" && s.Start > now.AddMinutes(-1) && IsError(s))
            .GroupBy(s => (s.Resource, Method: s.Attribute("http.route") ?? s.Name.Split(' ').Last()))
            .ToDictionary(g => g.Key, g => g.Count());
        var result = new List<MethodStats>();
        foreach (var g in durations)
        {
            var list = g.ToList();
            var rate = list.Sum(s => Increase(s, now.AddSeconds(-10), now, true)) / 10;
            var bounds = list[0].Bounds;
            double[]? buckets = null;
            foreach (var s in list)
                if (BucketIncrease(s, now.AddMinutes(-1), now) is { } b && s.Bounds.Length == bounds.Length)
                    buckets = buckets is null ? b : [.. buckets.Zip(b, (x, y) => x + y)];
            var unit = list[0].Unit == "ms" ? 1 : 1000;
            var history = new double[60];
            foreach (var s in list)
            {
                var rates = Rates(s.Points(), now, 60, 5, true);
                for (var i = 0; i < history.Length; i++) history[i] += rates[i];
            }
            result.Add(new MethodStats(g.Key.Resource, g.Key.Method, rate,
                buckets is null ? null : Quantile(buckets, bounds, 0.5) * unit,
                buckets is null ? null : Quantile(buckets, bounds, 0.99) * unit,
                errors.GetValueOrDefault((g.Key.Resource, g.Key.Method)), history));
        }
        return [.. result.OrderBy(m => m.Resource).ThenBy(m => m.Method)];
    }

    /// <summary>A server span that failed: status Error, or a gRPC status other than OK.</summary>
    public static bool IsError(SpanData s) =>
        s.Error || (s.Attribute("grpc.status_code") ?? s.Attribute("rpc.grpc.status_code")) is { } code && code != "0";

    /// <summary>The counts per minute of the business pulse and the order → points lag.</summary>
    public sealed record Pulse(string Name, int[] PerMinute);

    public static IReadOnlyList<Pulse> BusinessPulse(IReadOnlyList<SpanData> spans, DateTimeOffset now, int minutes = 10)
    {
        int[] PerMinute(Func<SpanData, bool> match)
        {
            var counts = new int[minutes];
            foreach (var s in spans)
            {
                var age = (int)Math.Floor((now - s.Start).TotalMinutes);
                if (age >= 0 && age < minutes && match(s)) counts[minutes - 1 - age]++;
            }
            return counts;
        }
        bool Published(SpanData s, string type) => s.Name == "outbox publish" && s.Attribute("messaging.message.type") == type;
        return
        [
            new("Orders recorded", PerMinute(IsRecordOrder)),
            new("Points earned (events)", PerMinute(s => Published(s, "PointsEarned"))),
            new("Points redeemed (events)", PerMinute(s => Published(s, "PointsRedeemed"))),
            new("Tier changes", PerMinute(s => Published(s, "TierChanged"))),
        ];
    }

    public static bool IsRecordOrder(SpanData s) => s.Kind == "Server" && s.Name.EndsWith("/RecordOrder", StringComparison.Ordinal) && !IsError(s);

    /// <summary>
    /// Order → points lag per trace: from the start of the customer service's RecordOrder to the end of the loyalty
    /// consumer that wrote the ledger (the consumer span of the same trace).
    /// </summary>
    public static IReadOnlyList<TimeSpan> OrderToPointsLags(IReadOnlyList<SpanData> spans) =>
        [.. spans.GroupBy(s => s.TraceId).Select(g =>
        {
            var order = g.FirstOrDefault(IsRecordOrder);
            var consumer = g.Where(s => s.Kind == "Consumer" && s.Resource == "loyalty").OrderByDescending(s => s.End).FirstOrDefault();
            return order is null || consumer is null ? (TimeSpan?)null : consumer.End - order.Start;
        }).OfType<TimeSpan>()];

    public static double? Percentile(IReadOnlyList<double> values, double q)
    {
        if (values.Count == 0) return null;
        var sorted = values.Order().ToArray();
        return sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)];
    }
}
