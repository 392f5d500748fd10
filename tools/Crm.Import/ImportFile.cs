using System.Text;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace Crm.Import;

/// <summary>One request read from the file (or why it could not be read), with the line it starts on.</summary>
public sealed record ImportRow(long Line, IMessage? Request, string? Error);

/// <summary>
/// Reads an import file lazily. JSON Lines: one request per line in its proto JSON form (UpsertCustomerRequest,
/// RecordOrderRequest or RefundOrderRequest). CSV: a header row of field paths of that request (proto or JSON names,
/// e.g. <c>ref.system</c>, <c>profile.name</c>, <c>lines.sku</c>), one request per row; repeated text fields take
/// values separated by <c>|</c>, money fields a plain amount (<c>amount_paid</c> = <c>1288.00</c>), dates
/// <c>yyyy-MM-dd</c>. For orders, consecutive rows with the same external_order_id are one order with several lines.
/// </summary>
public sealed class ImportFile(string path, MessageDescriptor request)
{
    private static readonly JsonParser Parser = new(JsonParser.Settings.Default);

    private bool IsJsonLines => path.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".ndjson", StringComparison.OrdinalIgnoreCase);

    /// <summary>Throws <see cref="FormatException"/> when a CSV file's header names a column the request does not have.</summary>
    public void CheckHeader()
    {
        if (IsJsonLines) return;
        using var reader = new StreamReader(path, Encoding.UTF8);
        var header = new CsvReader(reader).ReadRecord() ?? throw new FormatException("the file is empty (a CSV file starts with a header row).");
        foreach (var column in header.Fields) Column(column);
    }

    public async IAsyncEnumerable<ImportRow> ReadAsync()
    {
        using var reader = new StreamReader(path, Encoding.UTF8);
        if (IsJsonLines)
        {
            long number = 0;
            while (await reader.ReadLineAsync() is { } text)
            {
                number++;
                if (text.Trim().Length > 0) yield return Parse(number, text);
            }
            yield break;
        }

        var csv = new CsvReader(reader);
        var header = csv.ReadRecord() ?? throw new FormatException("the file is empty (a CSV file starts with a header row).");
        var columns = header.Fields.Select(Column).ToArray();
        var merge = request.FindFieldByName("external_order_id") is { } key && request.FindFieldByName("lines") is not null ? key : null;
        (long Line, JsonObject Json)? pending = null;
        while (csv.ReadRecord() is { } record)
        {
            if (record.Fields.All(f => f.Length == 0)) continue;
            JsonObject? json = null;
            string? error = null;
            try { json = ToJson(columns, record.Fields); }
            catch (FormatException e) { error = e.Message; }
            if (json is null)
            {
                if (pending is { } p) { yield return Parse(p.Line, p.Json.ToJsonString()); pending = null; }
                yield return new ImportRow(record.Line, null, error);
                continue;
            }
            if (merge is not null && pending is { } open && SameOrder(open.Json, json, merge.JsonName))
            {
                foreach (var line in json["lines"]?.AsArray().ToList() ?? []) ((JsonArray)open.Json["lines"]!).Add(line!.DeepClone());
                continue;
            }
            if (pending is { } previous) yield return Parse(previous.Line, previous.Json.ToJsonString());
            pending = (record.Line, json);
        }
        if (pending is { } last) yield return Parse(last.Line, last.Json.ToJsonString());
    }

    private static bool SameOrder(JsonObject a, JsonObject b, string key) =>
        a[key]?.GetValue<string>() is { Length: > 0 } id && b[key]?.GetValue<string>() == id && a["lines"] is JsonArray && b["lines"] is JsonArray;

    private ImportRow Parse(long line, string json)
    {
        try { return new ImportRow(line, Parser.Parse(json, request), null); }
        catch (Exception e) when (e is InvalidProtocolBufferException or InvalidJsonException or FormatException)
        {
            return new ImportRow(line, null, "cannot be read: " + e.Message);
        }
    }

    /// <summary>The field path of a header column, checked against the request type.</summary>
    private FieldDescriptor[] Column(string name)
    {
        var path = new List<FieldDescriptor>();
        var message = request;
        foreach (var part in name.Trim().Split('.'))
        {
            var field = message?.Fields.InDeclarationOrder().FirstOrDefault(f => f.Name == part || f.JsonName == part)
                ?? throw new FormatException($"column '{name}' is not a field of {request.Name}.");
            path.Add(field);
            message = field.FieldType == FieldType.Message && !IsLeaf(field.MessageType) ? field.MessageType : null;
        }
        return [.. path];
    }

    /// <summary>Messages a single CSV cell stands for.</summary>
    private static bool IsLeaf(MessageDescriptor m) =>
        m.FullName is "crm.common.v1.Money" or "google.type.Date" or "google.protobuf.Timestamp" or "google.protobuf.FieldMask";

    private static JsonObject ToJson(FieldDescriptor[][] columns, IReadOnlyList<string> values)
    {
        var root = new JsonObject();
        for (var i = 0; i < columns.Length; i++)
        {
            var value = i < values.Count ? values[i].Trim() : "";
            if (value.Length == 0) continue;
            var node = root;
            var path = columns[i];
            foreach (var field in path[..^1])
            {
                if (field.IsRepeated)
                {
                    // A repeated message in CSV: this row's one item (more items: more rows, for order lines).
                    var array = node[field.JsonName] as JsonArray ?? (JsonArray)(node[field.JsonName] = new JsonArray());
                    if (array.Count == 0) array.Add(new JsonObject());
                    node = (JsonObject)array[0]!;
                }
                else node = node[field.JsonName] as JsonObject ?? (JsonObject)(node[field.JsonName] = new JsonObject())!;
            }
            var leaf = path[^1];
            node[leaf.JsonName] = leaf.IsRepeated && leaf.FieldType != FieldType.Message
                ? new JsonArray(value.Split('|').Select(v => Scalar(leaf, v.Trim())).ToArray())
                : Scalar(leaf, value);
        }
        return root;
    }

    private static JsonNode Scalar(FieldDescriptor field, string value) => field.FieldType switch
    {
        FieldType.Bool => value.ToLowerInvariant() switch
        {
            "true" or "yes" or "1" => true,
            "false" or "no" or "0" => false,
            _ => throw new FormatException($"{field.Name}: '{value}' is not true or false."),
        },
        FieldType.Message when field.MessageType.FullName == "crm.common.v1.Money" => new JsonObject { ["amount"] = value },
        FieldType.Message when field.MessageType.FullName == "google.type.Date" =>
            DateOnly.TryParseExact(value, "yyyy-MM-dd", out var d)
                ? new JsonObject { ["year"] = d.Year, ["month"] = d.Month, ["day"] = d.Day }
                : throw new FormatException($"{field.Name}: '{value}' is not a date (yyyy-MM-dd)."),
        // Numbers, enums (by name), timestamps (RFC 3339): proto JSON reads them from strings.
        _ => JsonValue.Create(value),
    };
}

/// <summary>RFC 4180 CSV: quoted fields may hold commas, doubled quotes and line breaks.</summary>
internal sealed class CsvReader(TextReader reader)
{
    private long _line = 1;

    public sealed record Record(long Line, IReadOnlyList<string> Fields);

    public Record? ReadRecord()
    {
        var start = _line;
        var fields = new List<string>();
        var field = new StringBuilder();
        var quoted = false;
        var any = false;
        while (true)
        {
            var c = reader.Read();
            if (c == -1)
            {
                if (!any) return null;
                fields.Add(field.ToString());
                return new Record(start, fields);
            }
            any = true;
            if (quoted)
            {
                if (c == '"')
                {
                    if (reader.Peek() == '"') { reader.Read(); field.Append('"'); }
                    else quoted = false;
                }
                else
                {
                    if (c == '\n') _line++;
                    field.Append((char)c);
                }
                continue;
            }
            switch (c)
            {
                case '"' when field.Length == 0: quoted = true; break;
                case ',': fields.Add(field.ToString()); field.Clear(); break;
                case '\r': break;
                case '\n':
                    _line++;
                    fields.Add(field.ToString());
                    return new Record(start, fields);
                default: field.Append((char)c); break;
            }
        }
    }
}
