using Npgsql;
using NpgsqlTypes;

namespace Crm.ServiceDefaults.Data;

/// <summary>A value or NULL in a binary COPY row (the importer needs WriteNull for a missing value).</summary>
public static class BinaryImportExtensions
{
    public static Task WriteOrNullAsync(this NpgsqlBinaryImporter copy, string? value, NpgsqlDbType type, CancellationToken ct) =>
        value is null ? copy.WriteNullAsync(ct) : copy.WriteAsync(value, type, ct);

    public static Task WriteOrNullAsync<T>(this NpgsqlBinaryImporter copy, T? value, NpgsqlDbType type, CancellationToken ct) where T : struct =>
        value is { } v ? copy.WriteAsync(v, type, ct) : copy.WriteNullAsync(ct);
}
