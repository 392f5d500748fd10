using System.Text.RegularExpressions;

namespace Crm.ServiceDefaults.Security;

/// <summary>
/// Personal data kept out of logs and traces: phone numbers and e-mail addresses masked
/// (<c>+8613800138000</c> → <c>+86138****8000</c>, <c>lin.yue@example.com</c> → <c>l***@example.com</c>).
/// Log customer ids, never names, phones, e-mails, addresses or birthdays; text that may hold them
/// (echoed input in validation messages) goes through <see cref="Scrub"/>.
/// </summary>
public static partial class Pii
{
    public static string MaskPhone(string? phone)
    {
        if (string.IsNullOrEmpty(phone)) return "";
        var digits = phone.Where(char.IsDigit).Count();
        if (digits < 7) return new string('*', phone.Length);
        var compact = string.Concat(phone.Where(c => char.IsDigit(c) || c == '+'));
        var head = compact.StartsWith('+') ? Math.Min(6, compact.Length - 4) : Math.Min(3, compact.Length - 4);
        return compact[..head] + "****" + compact[^4..];
    }

    public static string MaskEmail(string? email)
    {
        if (string.IsNullOrEmpty(email)) return "";
        var at = email.LastIndexOf('@');
        return at <= 0 ? new string('*', email.Length) : email[0] + "***" + email[at..];
    }

    /// <summary>Masks every e-mail address and phone-like number (9+ digits, not a date) in free text.</summary>
    public static string Scrub(string? text)
    {
        if (string.IsNullOrEmpty(text)) return text ?? "";
        text = EmailPattern().Replace(text, m => MaskEmail(m.Value));
        return PhonePattern().Replace(text, m =>
            m.Value.Count(char.IsDigit) >= 9 && !DatePattern().IsMatch(m.Value) ? MaskPhone(m.Value) : m.Value);
    }

    [GeneratedRegex(@"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]*(\.[A-Za-z0-9\-]+)*")]
    private static partial Regex EmailPattern();

    [GeneratedRegex(@"(?<![\w])\+?\d[\d \-()]{5,}\d(?![\w])")]
    private static partial Regex PhonePattern();

    [GeneratedRegex(@"^\d{4}-\d{2}-\d{2}")]
    private static partial Regex DatePattern();
}
