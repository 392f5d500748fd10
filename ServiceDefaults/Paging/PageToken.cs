using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using Crm.ServiceDefaults.Errors;

namespace Crm.ServiceDefaults.Paging;

/// <summary>
/// Opaque keyset page tokens: the last key of a page plus a fingerprint of the query's filters, so a token
/// cannot silently be reused with different filters. Page sizes default to 50 and are capped at 200.
/// </summary>
public static class PageToken
{
    public const int DefaultPageSize = 50;
    public const int MaxPageSize = 200;

    public static int PageSize(int requested, Validator validator, string field = "page_size")
    {
        if (requested < 0 || requested > MaxPageSize)
            validator.Add(field, $"must be between 1 and {MaxPageSize} (0 means {DefaultPageSize}).");
        return requested == 0 ? DefaultPageSize : Math.Clamp(requested, 1, MaxPageSize);
    }

    public static string Encode(string key, string filters) =>
        Base64Url.EncodeToString(Encoding.UTF8.GetBytes($"{Fingerprint(filters)}|{key}"));

    /// <returns>The key of the last row of the previous page, or null for the first page.</returns>
    public static string? Decode(string token, string filters, Validator validator, string field = "page_token")
    {
        if (string.IsNullOrEmpty(token)) return null;
        try
        {
            var text = Encoding.UTF8.GetString(Base64Url.DecodeFromChars(token));
            var parts = text.Split('|', 2);
            if (parts.Length == 2 && parts[0] == Fingerprint(filters)) return parts[1];
            validator.Add(field, "does not belong to this query: page tokens only work with the filters they were issued for.");
        }
        catch (FormatException)
        {
            validator.Add(field, "is not a page token returned by this service.");
        }
        return null;
    }

    private static string Fingerprint(string filters) =>
        Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(filters)), 0, 6);
}
