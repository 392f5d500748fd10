using System.Text;

namespace Crm.Campaigns.Marketing;

/// <summary>Message templates with the fields {name}, {tier}, {points} and {coupon}; any other text in braces is kept as written.</summary>
public static class Templates
{
    public static readonly string[] Fields = ["name", "tier", "points", "coupon"];

    public static string Render(string template, IReadOnlyDictionary<string, string> values)
    {
        var text = new StringBuilder(template.Length + 32);
        var i = 0;
        while (i < template.Length)
        {
            var open = template.IndexOf('{', i);
            var close = open < 0 ? -1 : template.IndexOf('}', open + 1);
            if (close < 0)
            {
                text.Append(template, i, template.Length - i);
                break;
            }
            text.Append(template, i, open - i);
            var field = template[(open + 1)..close];
            if (values.TryGetValue(field, out var value)) text.Append(value);
            else text.Append(template, open, close - open + 1);
            i = close + 1;
        }
        return text.ToString();
    }

    /// <summary>The names in braces that are not template fields (a typo such as {nmae} would otherwise reach customers).</summary>
    public static IEnumerable<string> UnknownFields(string template) => NamesInBraces(template).Where(field => !Fields.Contains(field));

    /// <summary>Whether rendering <paramref name="template"/> fills in <paramref name="field"/>.</summary>
    public static bool Shows(string template, string field) => NamesInBraces(template).Contains(field);

    /// <summary>Each name in braces, read the way <see cref="Render"/> reads them.</summary>
    private static IEnumerable<string> NamesInBraces(string template)
    {
        var i = 0;
        while ((i = template.IndexOf('{', i)) >= 0)
        {
            var close = template.IndexOf('}', i + 1);
            if (close < 0) yield break;
            yield return template[(i + 1)..close];
            i = close + 1;
        }
    }
}
