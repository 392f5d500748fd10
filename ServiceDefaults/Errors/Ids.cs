namespace Crm.ServiceDefaults.Errors;

/// <summary>Resource ids are UUIDs in their canonical text form.</summary>
public static class Ids
{
    public static Guid Parse(string value, string field, Validator v)
    {
        if (string.IsNullOrWhiteSpace(value)) v.Add(field, "is required.");
        else if (!Guid.TryParse(value, out var id)) v.Add(field, $"'{Echo.Cut(value)}' is not a valid id (a UUID).");
        else return id;
        return Guid.Empty;
    }

    public static Guid Parse(string value, string field)
    {
        var v = new Validator();
        var id = Parse(value, field, v);
        v.ThrowIfInvalid();
        return id;
    }
}
