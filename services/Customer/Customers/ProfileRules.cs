using Crm.Contracts;
using Crm.ServiceDefaults.Errors;
using Proto = Crm.Customer.V1;

namespace Crm.Customer.Customers;

/// <summary>
/// Validates and normalises a profile sent over gRPC. Every bad field is reported, under its request path
/// (e.g. "profile.phone"), in one INVALID_ARGUMENT.
/// </summary>
public static class ProfileRules
{
    /// <summary>The field names UpdateCustomer accepts in update_mask (the proto field names).</summary>
    public static readonly IReadOnlySet<string> Fields = new HashSet<string>(StringComparer.Ordinal)
    {
        "name", "gender", "birthday", "phone", "email", "region", "city", "address", "education",
        "occupation", "preferences", "tags", "source_channel", "marketing_consent",
    };

    private const int MaxText = 200;
    private const int MaxListItems = 50;
    private const int MaxListItemLength = 50;

    /// <summary>Builds a new profile from every field of <paramref name="input"/>.</summary>
    public static Profile ForCreate(Proto.CustomerProfile? input, Validator validator, TimeProvider clock) =>
        Merge(new Profile { Name = "", Phone = "" }, input ?? new Proto.CustomerProfile(), Fields, validator, clock);

    /// <summary>Applies the fields named in <paramref name="fields"/> from <paramref name="input"/> onto <paramref name="current"/>.</summary>
    public static Profile Merge(Profile current, Proto.CustomerProfile input, IReadOnlySet<string> fields, Validator v, TimeProvider clock)
    {
        var p = current;
        const string at = "profile.";
        foreach (var field in fields)
        {
            switch (field)
            {
                case "name":
                    var name = input.Name.Trim();
                    v.Require(name.Length > 0, at + "name", "is required.")
                     .Require(name.Length <= 100, at + "name", "must be at most 100 characters.");
                    p = p with { Name = name };
                    break;
                case "gender":
                    v.Require(Enum.IsDefined(input.Gender), at + "gender", "is not a known gender value.");
                    p = p with { Gender = (short)input.Gender };
                    break;
                case "birthday":
                    p = p with { Birthday = Birthday(input.Birthday, v, clock) };
                    break;
                case "phone":
                    if (string.IsNullOrWhiteSpace(input.Phone)) v.Add(at + "phone", "is required.");
                    else if (!PhoneNumber.TryNormalize(input.Phone, out var phone)) v.Add(at + "phone", PhoneNumber.Rule + $"; got '{Clip(input.Phone)}'.");
                    else p = p with { Phone = phone };
                    break;
                case "email":
                    if (string.IsNullOrWhiteSpace(input.Email)) p = p with { Email = null };
                    else if (!EmailAddress.TryNormalize(input.Email, out var email)) v.Add(at + "email", $"is not a valid email address: '{Clip(input.Email)}'.");
                    else p = p with { Email = email };
                    break;
                case "region": p = p with { Region = Text(input.Region, at + "region", v) }; break;
                case "city": p = p with { City = Text(input.City, at + "city", v) }; break;
                case "address": p = p with { Address = Text(input.Address, at + "address", v) }; break;
                case "education": p = p with { Education = Text(input.Education, at + "education", v) }; break;
                case "occupation": p = p with { Occupation = Text(input.Occupation, at + "occupation", v) }; break;
                case "preferences": p = p with { Preferences = List(input.Preferences, at + "preferences", v) }; break;
                case "tags": p = p with { Tags = List(input.Tags, at + "tags", v) }; break;
                case "source_channel": p = p with { SourceChannel = Text(input.SourceChannel, at + "source_channel", v)?.ToLowerInvariant() }; break;
                case "marketing_consent": p = p with { MarketingConsent = input.MarketingConsent }; break;
            }
        }
        return p;
    }

    private static DateOnly? Birthday(Google.Type.Date? date, Validator v, TimeProvider clock)
    {
        if (date is null || (date.Year == 0 && date.Month == 0 && date.Day == 0)) return null;
        var today = DateOnly.FromDateTime(clock.GetUtcNow().UtcDateTime);
        if (date.Year is < 1900 or > 9999 || date.Month is < 1 or > 12 || date.Day < 1 || date.Day > DateTime.DaysInMonth(date.Year, date.Month))
        {
            v.Add("profile.birthday", $"{date.Year:D4}-{date.Month:D2}-{date.Day:D2} is not a valid date (year 1900-9999).");
            return null;
        }
        var birthday = new DateOnly(date.Year, date.Month, date.Day);
        if (birthday > today) v.Add("profile.birthday", "cannot be in the future.");
        return birthday;
    }

    private static string? Text(string value, string field, Validator v)
    {
        var text = value.Trim();
        v.Require(text.Length <= MaxText, field, $"must be at most {MaxText} characters.");
        return text.Length == 0 ? null : text;
    }

    private static string[] List(IEnumerable<string> values, string field, Validator v)
    {
        var items = values.Select(x => x.Trim()).ToList();
        for (var i = 0; i < items.Count; i++)
        {
            if (items[i].Length == 0) v.Add($"{field}[{i}]", "must not be empty.");
            else if (items[i].Length > MaxListItemLength) v.Add($"{field}[{i}]", $"must be at most {MaxListItemLength} characters.");
        }
        var distinct = items.Where(x => x.Length > 0).Distinct(StringComparer.Ordinal).ToArray();
        v.Require(distinct.Length <= MaxListItems, field, $"must have at most {MaxListItems} entries.");
        return distinct;
    }

    private static string Clip(string value) => Echo.Cut(value);
}
