namespace Crm.Contracts;

/// <summary>
/// One normal form for phone numbers across the suite (the customer service stores it; sales matches leads
/// against it). Phone numbers are stored in E.164 form so one person cannot register twice by writing the number
/// differently: "138 0013 8000", "138-0013-8000", "+86 13800138000" and "008613800138000" all become
/// "+8613800138000". Mainland numbers must be mobile numbers (11 digits, 13x-19x).
/// </summary>
public static class PhoneNumber
{
    public const string Rule = "must be a mainland mobile number (11 digits starting with 13-19) or an international number starting with + and 8-15 digits";

    public static bool TryNormalize(string? input, out string e164)
    {
        e164 = "";
        if (string.IsNullOrWhiteSpace(input) || input.Length > 32) return false;

        var text = new string(input.Where(c => c is not (' ' or '-' or '(' or ')' or '.')).ToArray());
        if (text.StartsWith("00", StringComparison.Ordinal)) text = "+" + text[2..];
        var international = text.StartsWith('+');
        var digits = international ? text[1..] : text;
        if (digits.Length == 0 || !digits.All(char.IsAsciiDigit)) return false;

        if (!international && digits.Length == 13 && digits.StartsWith("86", StringComparison.Ordinal))
            international = true;
        if (!international)
            return IsMainlandMobile(digits) && Set(out e164, "+86" + digits);
        if (digits.StartsWith("86", StringComparison.Ordinal))
            return IsMainlandMobile(digits[2..]) && Set(out e164, "+" + digits);
        return digits.Length is >= 8 and <= 15 && digits[0] != '0' && Set(out e164, "+" + digits);
    }

    private static bool IsMainlandMobile(string digits) =>
        digits.Length == 11 && digits[0] == '1' && digits[1] is >= '3' and <= '9';

    private static bool Set(out string target, string value)
    {
        target = value;
        return true;
    }
}
