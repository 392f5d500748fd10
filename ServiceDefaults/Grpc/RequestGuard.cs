using System.Collections;
using System.Collections.Concurrent;
using Crm.ServiceDefaults.Errors;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace Crm.ServiceDefaults.Grpc;

/// <summary>
/// Checks every incoming request message against its descriptor before any handler sees it, so no service
/// can forget: strings longer than their declared (crm.common.v1.max_length), repeated fields with more than
/// (crm.common.v1.max_items) items, strings containing U+0000 (Postgres cannot store it), enum numbers the
/// enum does not define, and google.protobuf.Timestamp / Duration / google.type.Date values out of range.
/// A violation is INVALID_ARGUMENT (through <see cref="ErrorInterceptor"/>) naming the full field path,
/// e.g. "lines[3].sku".
/// </summary>
public sealed class RequestGuard : Interceptor
{
    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(
        TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        MarkRead(context);
        if (request is IMessage message) RequestChecks.ThrowIfInvalid(message);
        return continuation(request, context);
    }

    public override Task ServerStreamingServerHandler<TRequest, TResponse>(
        TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context,
        ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        MarkRead(context);
        if (request is IMessage message) RequestChecks.ThrowIfInvalid(message);
        return continuation(request, responseStream, context);
    }

    public override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        MarkRead(context);
        return continuation(requestStream, context);
    }

    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context,
        DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        MarkRead(context);
        return continuation(requestStream, responseStream, context);
    }

    /// <summary>The request was read: from here on an UNKNOWN status is a server fault, not unreadable input.</summary>
    private static void MarkRead(ServerCallContext context) =>
        context.GetHttpContext().Items[UnreadableRequestsFilter.ReachedInterceptors] = true;
}

/// <summary>The descriptor-driven checks of <see cref="RequestGuard"/>, usable on their own.</summary>
public static class RequestChecks
{
    /// <summary>Walking stops after this many violations: enough to fix a request, small enough to send back.</summary>
    public const int MaxViolations = 20;
    private const int MaxDepth = 32;

    public const long MinTimestampSeconds = -62_135_596_800; // 0001-01-01T00:00:00Z
    public const long MaxTimestampSeconds = 253_402_300_799; // 9999-12-31T23:59:59Z
    public const long MaxDurationSeconds = 315_576_000_000;  // ±10,000 years

    private enum Kind { String, Enum, Message, Timestamp, Duration, Date, FieldMask, Other }

    private sealed record Check(FieldDescriptor Field, Kind Kind, int? MaxLength, int? MaxItems);

    /// <summary>A field's path, turned into text only when there is something to report (the walk runs on every request).</summary>
    private readonly record struct FieldPath(string Prefix, string Name, int Index = -1, string? Key = null)
    {
        public override string ToString() =>
            Index >= 0 ? $"{Prefix}{Name}[{Index}]" : Key is not null ? $"{Prefix}{Name}[{Key}]" : Prefix + Name;
    }

    private static readonly ConcurrentDictionary<MessageDescriptor, Check[]> Plans = new();

    public static void ThrowIfInvalid(IMessage message)
    {
        var violations = Collect(message);
        if (violations.Count > 0) throw new ValidationException(violations);
    }

    public static IReadOnlyList<FieldViolation> Collect(IMessage message)
    {
        var violations = new List<FieldViolation>();
        Walk(message, "", violations, 0);
        return violations;
    }

    private static Check[] Plan(MessageDescriptor descriptor) => Plans.GetOrAdd(descriptor, static d =>
        d.Fields.InFieldNumberOrder()
            .Select(f => new Check(f, KindOf(f), FieldLimits.MaxLength(f), FieldLimits.MaxItems(f)))
            .Where(c => c.Kind != Kind.Other || c.Field.IsRepeated || c.Field.IsMap)
            .ToArray());

    private static Kind KindOf(FieldDescriptor f) => f.FieldType switch
    {
        FieldType.String => Kind.String,
        FieldType.Enum => Kind.Enum,
        FieldType.Message or FieldType.Group => f.MessageType.FullName switch
        {
            "google.protobuf.Timestamp" => Kind.Timestamp,
            "google.protobuf.Duration" => Kind.Duration,
            "google.type.Date" => Kind.Date,
            "google.protobuf.FieldMask" => Kind.FieldMask,
            _ => Kind.Message,
        },
        _ => Kind.Other,
    };

    private static void Walk(IMessage message, string prefix, List<FieldViolation> violations, int depth)
    {
        if (depth > MaxDepth)
        {
            Add(violations, prefix.TrimEnd('.'), $"is nested more than {MaxDepth} levels deep.");
            return;
        }
        foreach (var check in Plan(message.Descriptor))
        {
            if (violations.Count >= MaxViolations) return;
            var field = check.Field;
            var path = new FieldPath(prefix, field.Name);
            if (field.IsMap)
            {
                var map = (IDictionary)field.Accessor.GetValue(message);
                if (check.MaxItems is { } maxEntries && map.Count > maxEntries)
                    Add(violations, path, $"must have at most {maxEntries} entries; got {map.Count}.");
                else
                    foreach (DictionaryEntry entry in map)
                    {
                        var key = Echo.Cut(entry.Key.ToString(), 32);
                        if (entry.Key is string k) CheckString(k, check.MaxLength, path with { Key = key }, violations);
                        var valueField = field.MessageType.FindFieldByNumber(2);
                        if (entry.Value is not null)
                            Value(new Check(valueField, KindOf(valueField), check.MaxLength, null), entry.Value, path with { Key = key }, violations, depth);
                    }
                continue;
            }
            if (field.IsRepeated)
            {
                var list = (IList)field.Accessor.GetValue(message);
                if (check.MaxItems is { } maxItems && list.Count > maxItems)
                {
                    Add(violations, path, $"must have at most {maxItems} items; got {list.Count}.");
                    continue; // its items are not worth reading
                }
                for (var i = 0; i < list.Count && violations.Count < MaxViolations; i++)
                    Value(check, list[i]!, path with { Index = i }, violations, depth);
                continue;
            }
            if (check.Kind is Kind.Message or Kind.Timestamp or Kind.Duration or Kind.Date or Kind.FieldMask && !field.Accessor.HasValue(message))
                continue;
            Value(check, field.Accessor.GetValue(message), path, violations, depth);
        }
    }

    private static void Value(Check check, object value, FieldPath path, List<FieldViolation> violations, int depth)
    {
        switch (check.Kind)
        {
            case Kind.String:
                CheckString((string)value, check.MaxLength, path, violations);
                break;
            case Kind.Enum:
                var number = Convert.ToInt32(value, System.Globalization.CultureInfo.InvariantCulture);
                if (check.Field.EnumType.FindValueByNumber(number) is null)
                    Add(violations, path, $"{number} is not a {check.Field.EnumType.Name} value.");
                break;
            case Kind.Timestamp:
                var ts = (Timestamp)value;
                if (ts.Seconds is < MinTimestampSeconds or > MaxTimestampSeconds || ts.Nanos is < 0 or > 999_999_999)
                    Add(violations, path, "is not a valid timestamp: seconds must be within 0001-01-01..9999-12-31 " +
                        $"({MinTimestampSeconds}..{MaxTimestampSeconds}) and nanos within 0..999999999.");
                break;
            case Kind.Duration:
                var d = (IMessage)value;
                var seconds = (long)d.Descriptor.FindFieldByNumber(1).Accessor.GetValue(d);
                var nanos = (int)d.Descriptor.FindFieldByNumber(2).Accessor.GetValue(d);
                if (seconds is < -MaxDurationSeconds or > MaxDurationSeconds || nanos is < -999_999_999 or > 999_999_999
                    || (seconds > 0 && nanos < 0) || (seconds < 0 && nanos > 0))
                    Add(violations, path, "is not a valid duration.");
                break;
            case Kind.Date:
                var date = (IMessage)value;
                var year = (int)date.Descriptor.FindFieldByNumber(1).Accessor.GetValue(date);
                var month = (int)date.Descriptor.FindFieldByNumber(2).Accessor.GetValue(date);
                var day = (int)date.Descriptor.FindFieldByNumber(3).Accessor.GetValue(date);
                if (year is < 0 or > 9999 || month is < 0 or > 12 || day is < 0 or > 31)
                    Add(violations, path, "is not a valid date: year 0..9999, month 0..12, day 0..31.");
                break;
            case Kind.FieldMask:
                var paths = ((FieldMask)value).Paths;
                if (check.MaxItems is { } maxPaths && paths.Count > maxPaths)
                {
                    Add(violations, new FieldPath(path.ToString() + ".", "paths"), $"must have at most {maxPaths} paths; got {paths.Count}.");
                    break;
                }
                for (var i = 0; i < paths.Count && violations.Count < MaxViolations; i++)
                    CheckString(paths[i], check.MaxLength, new FieldPath(path.ToString() + ".", "paths", i), violations);
                break;
            case Kind.Message:
                Walk((IMessage)value, path.ToString() + ".", violations, depth + 1);
                break;
        }
    }

    private static void CheckString(string value, int? maxLength, FieldPath path, List<FieldViolation> violations)
    {
        if (maxLength is { } max && value.Length > max)
            Add(violations, path, $"must be at most {max} characters; got {value.Length}.");
        if (value.Contains('\0'))
            Add(violations, path, "must not contain the NUL character (U+0000).");
    }

    private static void Add(List<FieldViolation> violations, FieldPath path, string description) =>
        Add(violations, path.ToString(), description);

    private static void Add(List<FieldViolation> violations, string path, string description)
    {
        if (violations.Count < MaxViolations) violations.Add(new FieldViolation(path, description));
    }
}
