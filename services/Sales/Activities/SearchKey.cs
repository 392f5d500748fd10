using System.Text;

namespace Crm.Sales.Activities;

/// <summary>
/// The text pg_trgm indexes for SearchActivities. The suite's Postgres cluster is initialised with --locale=C, and
/// there pg_trgm treats every non-ASCII character as a word separator: Chinese text yields no trigrams at all, so a
/// trigram index cannot find it. The key writes each UTF-16 unit of the lower-cased text as 'g' followed by four hex
/// digits ("戒指" → "g6212g6307"): only ASCII letters and digits, which pg_trgm indexes under any locale. A query is
/// encoded the same way, and a substring of the text is exactly a substring of the key that starts at a 'g'
/// (hex digits never contain 'g'), so ILIKE on the key matches what ILIKE on the text would.
/// </summary>
public static class SearchKey
{
    public static string Encode(string text)
    {
        var lower = text.ToLowerInvariant();
        var key = new StringBuilder(lower.Length * 5);
        foreach (var c in lower) key.Append('g').Append(((int)c).ToString("x4"));
        return key.ToString();
    }
}
