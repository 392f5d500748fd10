using System.Text;

namespace Crm.AppHost.Otlp;

/// <summary>
/// Strings that repeat from span to span (names, resources, scopes, routes, attribute keys): decoded once and then
/// shared, so a span does not allocate them again. Direct-mapped by hash; a collision only means decoding again.
/// </summary>
internal sealed class Utf8Cache
{
    private const int Size = 4096;
    private const int MaxLength = 256; // longer texts (SQL, messages) are rarely repeated byte for byte
    private readonly Entry?[] _entries = new Entry?[Size];

    private sealed record Entry(byte[] Utf8, string Text);

    public string Get(ReadOnlySpan<byte> utf8)
    {
        if (utf8.IsEmpty) return "";
        if (utf8.Length > MaxLength) return Encoding.UTF8.GetString(utf8);
        var hash = new HashCode();
        hash.AddBytes(utf8);
        var slot = (uint)hash.ToHashCode() % Size;
        if (_entries[slot] is { } entry && utf8.SequenceEqual(entry.Utf8)) return entry.Text;
        var text = Encoding.UTF8.GetString(utf8);
        _entries[slot] = new Entry(utf8.ToArray(), text); // a reference write: readers on other threads see either entry
        return text;
    }
}
