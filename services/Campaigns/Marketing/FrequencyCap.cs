using Dapper;
using Microsoft.Extensions.Options;
using Npgsql;
using StackExchange.Redis;

namespace Crm.Campaigns.Marketing;

public enum CapOutcome { Allowed, Capped, Unavailable }

/// <summary>
/// At most <see cref="MarketingOptions.FrequencyCapPerWeek"/> messages per customer and calendar week (brand time zone),
/// across campaigns: a Redis counter per customer and week that expires after the week. A missing counter (first
/// message of the week, or Redis restarted without its data) is first seeded from the delivery log's sent rows of the
/// week, so a restart never hands out a fresh allowance. Redis unreachable: <see cref="CapOutcome.Unavailable"/> — the
/// caller defers the send; it never sends unchecked.
/// </summary>
public sealed class FrequencyCap(IConnectionMultiplexer redis, IOptions<MarketingOptions> options, IOptions<CampaignsOptions> campaigns)
{
    private readonly TimeZoneInfo _zone = TimeZoneInfo.FindSystemTimeZoneById(campaigns.Value.TimeZone);

    /// <summary>
    /// Takes one allowance per entry (one entry per send; a customer may appear more than once). The Redis commands of all the
    /// entries are pipelined and the missing counters seeded in one query, so a set of sends costs three Redis round trips and
    /// at most one statement. Redis unreachable: every send <see cref="CapOutcome.Unavailable"/>.
    /// </summary>
    /// <param name="tx">The sends' transaction: the seed is read on its connection rather than a second one from the pool.</param>
    public async Task<CapOutcome[]> TryTakeManyAsync(NpgsqlTransaction tx, IReadOnlyList<Guid> customerIds, DateTime nowUtc, CancellationToken ct)
    {
        if (customerIds.Count == 0) return [];
        var (weekStart, weekEnd) = Week(nowUtc);
        var distinct = customerIds.Distinct().ToArray();
        try
        {
            var cache = redis.GetDatabase();
            var exists = await Task.WhenAll(distinct.Select(c => cache.KeyExistsAsync(Key(c, weekStart))));
            var missing = distinct.Where((_, i) => !exists[i]).ToArray();
            if (missing.Length > 0)
            {
                var sent = (await tx.Connection!.QueryAsync<(Guid Customer, long Sent)>(new CommandDefinition("""
                    SELECT customer_id, count(*) FROM campaign_deliveries WHERE customer_id = ANY (@missing) AND status = 'sent' AND at >= @weekStart
                    GROUP BY customer_id
                    """, new { missing, weekStart }, tx, cancellationToken: ct))).ToDictionary(r => r.Customer, r => r.Sent);
                TimeSpan? ttl = weekEnd - nowUtc + TimeSpan.FromHours(1);
                await Task.WhenAll(missing.Select(c => cache.StringSetAsync(Key(c, weekStart), (RedisValue)sent.GetValueOrDefault(c), ttl, When.NotExists)));
            }
            var counts = await Task.WhenAll(customerIds.Select(c => cache.StringIncrementAsync(Key(c, weekStart))));
            return counts.Select(n => n <= options.Value.FrequencyCapPerWeek ? CapOutcome.Allowed : CapOutcome.Capped).ToArray();
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            return customerIds.Select(_ => CapOutcome.Unavailable).ToArray();
        }
    }

    /// <summary>
    /// Returns allowances taken by <see cref="TryTakeManyAsync"/> for messages that were not sent after all (no coupon, or the
    /// sends failed). Best effort: when Redis cannot be reached the counter stays too high until it expires or is seeded again
    /// from the delivery log — a message too few, never one too many.
    /// </summary>
    public async Task GiveBackManyAsync(IEnumerable<Guid> customerIds, DateTime nowUtc)
    {
        var weekStart = Week(nowUtc).Start;
        try
        {
            var cache = redis.GetDatabase();
            await Task.WhenAll(customerIds.Select(c => cache.StringDecrementAsync(Key(c, weekStart))));
        }
        catch (Exception e) when (e is RedisException or TimeoutException) { }
    }

    private static string Key(Guid customerId, DateTime weekStart) => $"campaigns:cap:{customerId:N}:{weekStart:yyyyMMdd}";

    /// <summary>Monday 00:00 to the next Monday 00:00 in the brand's time zone, as UTC.</summary>
    public (DateTime Start, DateTime End) Week(DateTime nowUtc)
    {
        var local = TimeZoneInfo.ConvertTimeFromUtc(nowUtc, _zone).Date;
        var monday = local.AddDays(-(((int)local.DayOfWeek + 6) % 7));
        return (TimeZoneInfo.ConvertTimeToUtc(monday, _zone), TimeZoneInfo.ConvertTimeToUtc(monday.AddDays(7), _zone));
    }
}
