namespace Crm.ServiceDefaults.Data;

/// <summary>
/// Postgres keeps timestamps to the microsecond, .NET to 100 ns. Values are cut to microseconds before they
/// are stored, so what a write returns equals what a later read returns.
/// </summary>
public static class PostgresTime
{
    public static DateTime ToMicroseconds(this DateTime value) => new(value.Ticks - value.Ticks % 10, value.Kind);

    public static DateTime UtcNowForDb(this TimeProvider clock) => clock.GetUtcNow().UtcDateTime.ToMicroseconds();
}
