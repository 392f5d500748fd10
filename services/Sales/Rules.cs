using System.Globalization;
using System.Net.Mail;
using Crm.Common.V1;
using Crm.ServiceDefaults.Errors;
using Google.Protobuf.WellKnownTypes;

namespace Crm.Sales;

/// <summary>Field validation shared by the RPCs: every bad field is reported, nothing is written.</summary>
public static class Rules
{
    public const decimal MaxAmount = 999_999_999_999.99m;

    public static string? Optional(string? value, string field, Validator v, int max)
    {
        var text = value?.Trim() ?? "";
        if (text.Length > max) v.Add(field, $"must be at most {max} characters.");
        return text.Length == 0 ? null : text;
    }

    public static string Required(string? value, string field, Validator v, int max)
    {
        var text = value?.Trim() ?? "";
        if (text.Length == 0) v.Add(field, "is required.");
        else if (text.Length > max) v.Add(field, $"must be at most {max} characters.");
        return text;
    }

    public static Guid? OptionalId(string? value, string field, Validator v) =>
        string.IsNullOrWhiteSpace(value) ? null : Ids.Parse(value, field, v);

    /// <summary>A positive amount in yuan with at most two decimals.</summary>
    public static decimal Amount(Money? money, string field, Validator v)
    {
        if (money is null || string.IsNullOrWhiteSpace(money.Amount))
        {
            v.Add(field, "is required, in yuan with at most two decimals, e.g. \"30000.00\".");
            return 0;
        }
        if (!money.TryToDecimal(out var value))
        {
            v.Add(field, $"'{Echo.Cut(money.Amount)}' is not an amount in yuan with at most two decimals.");
            return 0;
        }
        if (value <= 0) v.Add(field, $"must be greater than zero; got {Echo.Cut(money.Amount)}.");
        else if (value > MaxAmount) v.Add(field, $"must be at most {MaxAmount.ToString(CultureInfo.InvariantCulture)}.");
        return value;
    }

    public static DateOnly? Date(Google.Type.Date? date, string field, Validator v, bool required)
    {
        if (date is null || (date.Year == 0 && date.Month == 0 && date.Day == 0))
        {
            if (required) v.Add(field, "is required.");
            return null;
        }
        if (date.Year is < 2000 or > 2999 || date.Month is < 1 or > 12 || date.Day < 1 || date.Day > DateTime.DaysInMonth(date.Year, date.Month))
        {
            v.Add(field, $"{date.Year:0000}-{date.Month:00}-{date.Day:00} is not a date between 2000 and 2999.");
            return null;
        }
        return new DateOnly(date.Year, date.Month, date.Day);
    }

    public static DateTime? Time(Timestamp? ts, string field, Validator v)
    {
        if (ts is null) return null;
        var dt = ts.ToDateTime();
        if (dt.Year is < 2000 or > 2999)
        {
            v.Add(field, "must be between the years 2000 and 2999.");
            return null;
        }
        return new DateTime(dt.Ticks - dt.Ticks % 10, DateTimeKind.Utc);
    }

    public static string Percent(int part, int whole) =>
        (whole == 0 ? 0m : Math.Round(part * 100m / whole, 2, MidpointRounding.AwayFromZero)).ToString("0.00", CultureInfo.InvariantCulture);
}
