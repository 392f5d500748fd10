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

    /// <param name="tx">The send's transaction: the seed is read on its connection rather than a second one from the pool
    /// (a burst of sends each holding one connection and waiting for another would exhaust the pool).</param>
    public async Task<CapOutcome> TryTakeAsync(NpgsqlTransaction tx, Guid customerId, DateTime nowUtc, CancellationToken ct)
    {
        var (weekStart, weekEnd) = Week(nowUtc);
        var key = $"campaigns:cap:{customerId:N}:{weekStart:yyyyMMdd}";
        try
        {
            var cache = redis.GetDatabase();
            if (!await cache.KeyExistsAsync(key))
            {
                var sent = await tx.Connection!.ExecuteScalarAsync<long>(new CommandDefinition("""
                    SELECT count(*) FROM campaign_deliveries WHERE customer_id = @customerId AND status = 'sent' AND at >= @weekStart
                    """, new { customerId, weekStart }, tx, cancellationToken: ct));
                TimeSpan? ttl = weekEnd - nowUtc + TimeSpan.FromHours(1);
                await cache.StringSetAsync(key, (RedisValue)sent, ttl, When.NotExists);
            }
            // Over the cap the counter stays raised: the week is used up either way.
            return await cache.StringIncrementAsync(key) <= options.Value.FrequencyCapPerWeek ? CapOutcome.Allowed : CapOutcome.Capped;
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            return CapOutcome.Unavailable;
        }
    }

    /// <summary>
    /// Returns an allowance taken by <see cref="TryTakeAsync"/> for a message that was not sent after all (its coupon could
    /// not be issued). Best effort: when Redis cannot be reached the counter stays one too high until it expires or is
    /// seeded again from the delivery log — a message too few, never one too many.
    /// </summary>
    public async Task GiveBackAsync(Guid customerId, DateTime nowUtc, CancellationToken ct)
    {
        var key = $"campaigns:cap:{customerId:N}:{Week(nowUtc).Start:yyyyMMdd}";
        try
        {
            await redis.GetDatabase().StringDecrementAsync(key);
        }
        catch (Exception e) when (e is RedisException or TimeoutException) { }
    }

    /// <summary>Monday 00:00 to the next Monday 00:00 in the brand's time zone, as UTC.</summary>
    public (DateTime Start, DateTime End) Week(DateTime nowUtc)
    {
        var local = TimeZoneInfo.ConvertTimeFromUtc(nowUtc, _zone).Date;
        var monday = local.AddDays(-(((int)local.DayOfWeek + 6) % 7));
        return (TimeZoneInfo.ConvertTimeToUtc(monday, _zone), TimeZoneInfo.ConvertTimeToUtc(monday.AddDays(7), _zone));
    }
}
