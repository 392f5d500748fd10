using Crm.Campaigns.Segments;
using Dapper;
using Npgsql;

namespace Crm.Campaigns.Marketing;

/// <summary>
/// Who has a birthday on a local date, as the read model has it (month and day of the profile's birthday), limited to a
/// segment's current members. Born on 29 February: greeted on 28 February in a year without a 29th.
/// </summary>
public sealed class BirthdayAudience(NpgsqlDataSource db, SegmentAudience audience)
{
    public async Task<IReadOnlyList<Guid>> MembersAsync(Guid segmentId, DateOnly date, CancellationToken ct)
    {
        var days = new List<short> { (short)date.Day };
        if (date is { Month: 2, Day: 28 } && !DateTime.IsLeapYear(date.Year)) days.Add(29);
        await using var connection = await db.OpenConnectionAsync(ct);
        var born = await connection.QueryAsync<Guid>(new CommandDefinition("""
            SELECT customer_id FROM customers WHERE birthday_month = @month AND birthday_day = ANY(@days) ORDER BY customer_id
            """, new { month = (short)date.Month, days = days.ToArray() }, cancellationToken: ct));
        var members = new List<Guid>();
        foreach (var id in born)
            if (await audience.ContainsAsync(segmentId, id, ct)) members.Add(id);
        return members;
    }
}
