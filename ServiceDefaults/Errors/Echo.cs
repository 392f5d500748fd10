namespace Crm.ServiceDefaults.Errors;

/// <summary>
/// Values echoed back in error messages are cut short: a caller's 30 KB value must not come back in the
/// grpc-message trailer (HTTP/2 clients refuse or stall on oversized header blocks).
/// </summary>
public static class Echo
{
    public const int MaxEchoLength = 64;

    /// <summary>The value itself when short, else its first <paramref name="max"/> characters and an ellipsis.</summary>
    public static string Cut(string? value, int max = MaxEchoLength)
    {
        if (value is null) return "";
        if (value.Length <= max) return value;
        var end = max;
        if (end > 0 && char.IsHighSurrogate(value[end - 1])) end--; // never split a surrogate pair
        return string.Concat(value.AsSpan(0, end), "…");
    }
}
