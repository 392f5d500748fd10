using System.Net.Mail;

namespace Crm.Contracts;

/// <summary>Emails are stored trimmed and lower-cased, so uniqueness ignores case.</summary>
public static class EmailAddress
{
    public static bool TryNormalize(string? input, out string normalized)
    {
        normalized = (input ?? "").Trim().ToLowerInvariant();
        if (normalized.Length is 0 or > 254) return false;
        var at = normalized.IndexOf('@');
        if (at <= 0 || at != normalized.LastIndexOf('@') || !normalized[(at + 1)..].Contains('.')) return false;
        return MailAddress.TryCreate(normalized, out var parsed) && parsed.Address == normalized;
    }
}
