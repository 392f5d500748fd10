using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace Crm.Messaging;

/// <summary>
/// The customer an event of type <typeparamref name="T"/> is about, as the SQL function change_event_customer (migration
/// 0006) reads it from the event's JSON: <c>customerId</c> at the top of the payload or, when that is missing or null,
/// <c>customer.customerId</c> (CustomerRegistered, CustomerUpdated); a value that is not a UUID in its text form names
/// no customer. The properties are found once per type, from the serializer's own contract, so a write reads one
/// property instead of having Postgres parse the payload again (about 17 µs of its CPU an event against 1 µs).
/// A type whose JSON the contract cannot predict from the property values (a custom converter, an ignore condition,
/// extension data, polymorphism) is read from its serialized payload instead.
/// </summary>
internal static class EventCustomer<T> where T : class
{
    private static readonly Func<T, string, Guid?> Rule = Build();

    /// <param name="payload">The message as <see cref="Outbox"/> serialized it.</param>
    public static Guid? Of(T message, string payload) => Rule(message, payload);

    private static Func<T, string, Guid?> Build()
    {
        var info = Outbox.Json.GetTypeInfo(typeof(T));
        if (!Predictable(info)) return (_, payload) => EventCustomer.FromJson(payload);
        var top = Find(info, "customerId");
        var customer = Find(info, "customer");
        if (top is { } t && !Simple(t)) return (_, payload) => EventCustomer.FromJson(payload);
        Func<object, (bool Present, Guid? Id)>? nested = null;
        if (customer is { } c)
        {
            var nestedInfo = Outbox.Json.GetTypeInfo(c.PropertyType);
            if (c.CustomConverter is not null || c.ShouldSerialize is not null || !Predictable(nestedInfo))
                return (_, payload) => EventCustomer.FromJson(payload);
            var inner = Find(nestedInfo, "customerId");
            if (inner is { } i && !Simple(i)) return (_, payload) => EventCustomer.FromJson(payload);
            var get = c.Get!;
            nested = inner is null ? null : value => get(value) is { } v ? Read(inner, v) : (false, null);
        }
        return (message, _) =>
        {
            // coalesce(payload ->> 'customerId', payload #>> '{customer,customerId}'): a JSON null falls through.
            if (top is not null && Read(top, message) is (true, var id)) return id;
            return nested is not null && nested(message) is (true, var inner) ? inner : null;
        };
    }

    private static JsonPropertyInfo? Find(JsonTypeInfo info, string name) =>
        info.Properties.FirstOrDefault(p => p.Get is not null && string.Equals(p.Name, name, StringComparison.Ordinal));

    /// <summary>An object whose JSON keys and values follow from its properties alone.</summary>
    private static bool Predictable(JsonTypeInfo info) =>
        info.Kind == JsonTypeInfoKind.Object && info.PolymorphismOptions is null && info.Type != typeof(object)
        && info.Properties.All(p => !p.IsExtensionData);

    /// <summary>A Guid or string written as such, always (no converter of its own, no ignore condition).</summary>
    private static bool Simple(JsonPropertyInfo p) =>
        p.CustomConverter is null && p.ShouldSerialize is null
        && (p.PropertyType == typeof(Guid) || p.PropertyType == typeof(Guid?) || p.PropertyType == typeof(string));

    /// <summary>Present: the value is not JSON null (so coalesce stops at it); Id: the customer it names, if a UUID.</summary>
    private static (bool Present, Guid? Id) Read(JsonPropertyInfo property, object owner) => property.Get!(owner) switch
    {
        null => (false, null),
        Guid id => (true, id),
        string text => (true, EventCustomer.Uuid(text)),
        _ => (true, null),
    };
}

internal static class EventCustomer
{
    /// <summary>The rule of <see cref="EventCustomer{T}"/> applied to the JSON text itself.</summary>
    public static Guid? FromJson(string payload)
    {
        using var document = JsonDocument.Parse(payload);
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object) return null;
        if (Text(root, "customerId") is (true, var top)) return Uuid(top);
        return root.TryGetProperty("customer", out var customer) && customer.ValueKind == JsonValueKind.Object
            && Text(customer, "customerId") is (true, var inner) ? Uuid(inner) : null;
    }

    /// <summary>What ->> gives for a key: nothing for a missing key or JSON null, a string's value, other values' JSON text.</summary>
    private static (bool Present, string? Text) Text(JsonElement owner, string name) =>
        !owner.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null ? (false, null)
        : (true, value.ValueKind == JsonValueKind.String ? value.GetString() : value.GetRawText());

    /// <summary>The UUID in <paramref name="text"/> when it matches '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' (any case).</summary>
    public static Guid? Uuid(string? text)
    {
        if (text is not { Length: 36 }) return null;
        for (var i = 0; i < text.Length; i++)
        {
            var hyphen = i is 8 or 13 or 18 or 23;
            if (hyphen ? text[i] != '-' : !char.IsAsciiHexDigit(text[i])) return null;
        }
        return Guid.ParseExact(text, "D");
    }
}
