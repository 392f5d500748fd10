using Crm.ServiceDefaults.Errors;
using Proto = Crm.Customer.V1;

namespace Crm.Customer.Customers;

/// <summary>The id a partner system (erp, tmall, pos-sz, ...) knows a customer by; unique per system.</summary>
public sealed record ExternalId(string System, string Id)
{
    public override string ToString() => $"{System}/{Id}";

    /// <summary>"system/id", as the customers query returns them (a system name never contains '/').</summary>
    public static ExternalId FromColumn(string value)
    {
        var slash = value.IndexOf('/');
        return new ExternalId(value[..slash], value[(slash + 1)..]);
    }

    /// <summary>
    /// Validates <paramref name="r"/> under <paramref name="field"/>: system is 1-32 of a-z, 0-9, '-', '_' (given
    /// in any case, stored lower case); id is 1-100 characters without control characters, trimmed.
    /// </summary>
    public static ExternalId? Parse(Proto.ExternalRef? r, string field, Validator v)
    {
        if (r is null)
        {
            v.Add(field, "is required: the partner system's name and its id for the customer.");
            return null;
        }
        var system = Crm.ServiceDefaults.Security.SourceSystem.Normalize(r.System);
        var id = r.Id.Trim();
        var ok = true;
        if (!Crm.ServiceDefaults.Security.SourceSystem.IsValid(system))
        {
            v.Add(field + ".system", "is required: 1-32 letters, digits, '-' or '_' (e.g. erp, tmall, pos-sz).");
            ok = false;
        }
        if (id.Length is 0 or > 100 || id.Any(char.IsControl))
        {
            v.Add(field + ".id", "is required: 1-100 characters, no control characters.");
            ok = false;
        }
        return ok ? new ExternalId(system, id) : null;
    }
}
