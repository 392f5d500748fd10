using System.Globalization;

namespace Crm.Common.V1;

public partial class Money
{
    private const NumberStyles Style = NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint;

    /// <summary>"10000.50" for 10000.5m: always two decimals, invariant culture.</summary>
    public static Money FromDecimal(decimal value) => new() { Amount = value.ToString("0.00", CultureInfo.InvariantCulture) };

    /// <summary>Parses the amount; false for anything but a plain decimal with at most two decimal places.</summary>
    public bool TryToDecimal(out decimal value)
    {
        value = 0;
        var text = Amount?.Trim() ?? "";
        // decimal.TryParse ignores trailing NUL characters ("1\0" parses as 1): refuse them explicitly.
        if (text.Length is 0 or > 20 || text.Contains('\0') || !decimal.TryParse(text, Style, CultureInfo.InvariantCulture, out var parsed))
            return false;
        if (decimal.Round(parsed, 2) != parsed) return false;
        value = parsed;
        return true;
    }
}
