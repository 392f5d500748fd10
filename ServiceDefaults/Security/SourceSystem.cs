namespace Crm.ServiceDefaults.Security;

/// <summary>
/// The name of a partner's source system (erp, tmall, pos-sz): the namespace of its external ids and what a partner
/// token's <c>systems</c> claim lists. One rule for the ids, the claim and the token command.
/// </summary>
public static class SourceSystem
{
    public static string Normalize(string name) => name.Trim().ToLowerInvariant();

    /// <summary>1-32 of a-z, 0-9, '-' and '_' (after <see cref="Normalize"/>).</summary>
    public static bool IsValid(string name) =>
        name.Length is > 0 and <= 32 && name.All(c => c is >= 'a' and <= 'z' or >= '0' and <= '9' or '-' or '_');
}
