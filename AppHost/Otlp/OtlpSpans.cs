using System.Globalization;
using W = Crm.AppHost.Otlp.ProtoReader;

namespace Crm.AppHost.Otlp;

/// <summary>
/// Reads an OTLP ExportTraceServiceRequest straight from its bytes into <see cref="SpanData"/>: only the fields the
/// store indexes are decoded; each span's own bytes are kept for its other attributes. Building the generated
/// messages instead cost an object per attribute and value, for attributes that are almost never looked at.
/// Field numbers are those of opentelemetry/proto/trace/v1/trace.proto and common/v1/common.proto.
/// </summary>
internal static class OtlpSpans
{
    /// <summary>Throws <see cref="InvalidDataException"/> for a malformed request; nothing is returned from it then.</summary>
    public static List<SpanData> Read(ReadOnlySpan<byte> request, Utf8Cache strings)
    {
        var spans = new List<SpanData>();
        var kept = new KeptBytes();
        var reader = new ProtoReader(request);
        while (reader.Next(out var field, out var wire))
        {
            if (field == 1 && wire == W.LengthDelimited) ReadResourceSpans(reader.ReadBytes(), strings, kept, spans);
            else reader.Skip(wire);
        }
        return spans;
    }

    private static void ReadResourceSpans(ReadOnlySpan<byte> bytes, Utf8Cache strings, KeptBytes kept, List<SpanData> spans)
    {
        // The resource (field 1) is read first wherever it comes, since every span carries its name.
        var resource = "unknown";
        var reader = new ProtoReader(bytes);
        while (reader.Next(out var field, out var wire))
        {
            if (field == 1 && wire == W.LengthDelimited) resource = ServiceName(reader.ReadBytes(), strings) ?? resource;
            else reader.Skip(wire);
        }
        reader = new ProtoReader(bytes);
        while (reader.Next(out var field, out var wire))
        {
            if (field == 2 && wire == W.LengthDelimited) ReadScopeSpans(reader.ReadBytes(), resource, strings, kept, spans);
            else reader.Skip(wire);
        }
    }

    private static string? ServiceName(ReadOnlySpan<byte> resource, Utf8Cache strings)
    {
        var reader = new ProtoReader(resource);
        while (reader.Next(out var field, out var wire))
        {
            if (field != 1 || wire != W.LengthDelimited) { reader.Skip(wire); continue; }
            KeyValue(reader.ReadBytes(), out var key, out var value);
            if (key.SequenceEqual("service.name"u8)) return Text(value, strings);
        }
        return null;
    }

    private static void ReadScopeSpans(ReadOnlySpan<byte> bytes, string resource, Utf8Cache strings, KeptBytes kept, List<SpanData> spans)
    {
        var scope = "";
        var reader = new ProtoReader(bytes);
        while (reader.Next(out var field, out var wire))
        {
            if (field == 1 && wire == W.LengthDelimited) scope = ScopeName(reader.ReadBytes(), strings);
            else reader.Skip(wire);
        }
        reader = new ProtoReader(bytes);
        while (reader.Next(out var field, out var wire))
        {
            if (field == 2 && wire == W.LengthDelimited) spans.Add(ReadSpan(reader.ReadBytes(), resource, scope, strings, kept));
            else reader.Skip(wire);
        }
    }

    private static string ScopeName(ReadOnlySpan<byte> scope, Utf8Cache strings)
    {
        var reader = new ProtoReader(scope);
        while (reader.Next(out var field, out var wire))
        {
            if (field == 1 && wire == W.LengthDelimited) return strings.Get(reader.ReadBytes());
            reader.Skip(wire);
        }
        return "";
    }

    private static readonly string[] Kinds = ["Unspecified", "Internal", "Server", "Client", "Producer", "Consumer"];

    private static SpanData ReadSpan(ReadOnlySpan<byte> bytes, string resource, string scope, Utf8Cache strings, KeptBytes kept)
    {
        ReadOnlySpan<byte> traceId = default, spanId = default, parent = default;
        string name = "", kind = Kinds[0];
        ulong start = 0, end = 0;
        var error = false;
        string? statusMessage = null, route = null, grpcStatus = null, rpcGrpcStatus = null, messageType = null;
        var reader = new ProtoReader(bytes);
        while (reader.Next(out var field, out var wire))
        {
            switch (field, wire)
            {
                case (1, W.LengthDelimited): traceId = reader.ReadBytes(); break;
                case (2, W.LengthDelimited): spanId = reader.ReadBytes(); break;
                case (4, W.LengthDelimited): parent = reader.ReadBytes(); break;
                case (5, W.LengthDelimited): name = strings.Get(reader.ReadBytes()); break;
                case (6, W.Varint):
                    var k = reader.ReadVarint();
                    kind = k < (ulong)Kinds.Length ? Kinds[k] : Kinds[0];
                    break;
                case (7, W.Fixed64): start = reader.ReadFixed64(); break;
                case (8, W.Fixed64): end = reader.ReadFixed64(); break;
                case (9, W.LengthDelimited):
                    KeyValue(reader.ReadBytes(), out var key, out var value);
                    if (key.SequenceEqual("http.route"u8)) route = Text(value, strings);
                    else if (key.SequenceEqual("grpc.status_code"u8)) grpcStatus = Text(value, strings);
                    else if (key.SequenceEqual("rpc.grpc.status_code"u8)) rpcGrpcStatus = Text(value, strings);
                    else if (key.SequenceEqual("messaging.message.type"u8)) messageType = Text(value, strings);
                    break;
                case (15, W.LengthDelimited):
                    (error, statusMessage) = Status(reader.ReadBytes(), strings);
                    break;
                default: reader.Skip(wire); break;
            }
        }
        return new SpanData(Convert.ToHexStringLower(traceId), Convert.ToHexStringLower(spanId), parent.IsEmpty ? null : Convert.ToHexStringLower(parent),
            name, kind, resource, scope, Time(start), Time(end), error, statusMessage, kept.Keep(bytes), route, grpcStatus, rpcGrpcStatus, messageType);
    }

    private static (bool Error, string? Message) Status(ReadOnlySpan<byte> status, Utf8Cache strings)
    {
        var (error, message) = (false, (string?)null);
        var reader = new ProtoReader(status);
        while (reader.Next(out var field, out var wire))
        {
            if (field == 2 && wire == W.LengthDelimited) message = strings.Get(reader.ReadBytes()) is { Length: > 0 } m ? m : null;
            else if (field == 3 && wire == W.Varint) error = reader.ReadVarint() == 2; // STATUS_CODE_ERROR
            else reader.Skip(wire);
        }
        return (error, message);
    }

    /// <summary>A KeyValue's key (UTF-8) and its AnyValue's bytes.</summary>
    private static void KeyValue(ReadOnlySpan<byte> keyValue, out ReadOnlySpan<byte> key, out ReadOnlySpan<byte> value)
    {
        key = default;
        value = default;
        var reader = new ProtoReader(keyValue);
        while (reader.Next(out var field, out var wire))
        {
            if (field == 1 && wire == W.LengthDelimited) key = reader.ReadBytes();
            else if (field == 2 && wire == W.LengthDelimited) value = reader.ReadBytes();
            else reader.Skip(wire);
        }
    }

    /// <summary>A scalar AnyValue as text, as <see cref="TelemetryStore.Text"/> writes it; arrays and lists as "".</summary>
    private static string Text(ReadOnlySpan<byte> anyValue, Utf8Cache strings)
    {
        var reader = new ProtoReader(anyValue);
        var text = "";
        while (reader.Next(out var field, out var wire))
        {
            text = (field, wire) switch
            {
                (1, W.LengthDelimited) => strings.Get(reader.ReadBytes()),
                (2, W.Varint) => reader.ReadVarint() != 0 ? "true" : "false",
                (3, W.Varint) => Integer((long)reader.ReadVarint()),
                (4, W.Fixed64) => BitConverter.UInt64BitsToDouble(reader.ReadFixed64()).ToString(CultureInfo.InvariantCulture),
                _ => Skipped(ref reader, wire),
            };
        }
        return text;
    }

    private static string Skipped(ref ProtoReader reader, int wire)
    {
        reader.Skip(wire);
        return "";
    }

    private static readonly string[] SmallIntegers = [.. Enumerable.Range(0, 32).Select(i => i.ToString(CultureInfo.InvariantCulture))];

    /// <summary>Status codes and the like, without a new string each time.</summary>
    private static string Integer(long value) =>
        value is >= 0 and < 32 ? SmallIntegers[value] : value.ToString(CultureInfo.InvariantCulture);

    private static DateTimeOffset Time(ulong unixNano) =>
        unixNano == 0 ? DateTimeOffset.UtcNow : DateTimeOffset.UnixEpoch.AddTicks((long)(unixNano / 100));

    /// <summary>
    /// Copies of the spans' bytes, packed into chunks below the large-object threshold: one allocation per chunk, not
    /// per span, and none that the request's (pooled) buffer has to outlive.
    /// </summary>
    private sealed class KeptBytes
    {
        private const int ChunkSize = 32 * 1024;
        private byte[] _chunk = [];
        private int _used;

        public ReadOnlyMemory<byte> Keep(ReadOnlySpan<byte> bytes)
        {
            if (bytes.Length > ChunkSize / 4) return bytes.ToArray();
            if (_chunk.Length - _used < bytes.Length) (_chunk, _used) = (new byte[ChunkSize], 0);
            bytes.CopyTo(_chunk.AsSpan(_used));
            var kept = new ReadOnlyMemory<byte>(_chunk, _used, bytes.Length);
            _used += bytes.Length;
            return kept;
        }
    }
}
