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
    /// Takes one allowance per entry (one entry per send; a customer may appear more than once). One Lua script counts every
    /// entry whose counter exists; only when some are missing are they seeded from the delivery log in one query and counted
    /// by a second script. So a set of sends costs one Redis round trip (two and one statement on a customer's first message
    /// of the week) instead of three commands per send. Redis unreachable: every send <see cref="CapOutcome.Unavailable"/>.
    /// </summary>
    /// <param name="tx">The sends' transaction: the seed is read on its connection rather than a second one from the pool.</param>
    public async Task<CapOutcome[]> TryTakeManyAsync(NpgsqlTransaction tx, IReadOnlyList<Guid> customerIds, DateTime nowUtc, CancellationToken ct)
    {
        if (customerIds.Count == 0) return [];
        var (weekStart, weekEnd) = Week(nowUtc);
        try
        {
            var cache = redis.GetDatabase();
            var counts = (long[])(await cache.ScriptEvaluateAsync(IncrementExisting,
                customerIds.Select(c => (RedisKey)Key(c, weekStart)).ToArray()))!;
            var missing = Enumerable.Range(0, counts.Length).Where(i => counts[i] < 0).ToList();
            if (missing.Count > 0)
            {
                var ids = missing.Select(i => customerIds[i]).Distinct().ToArray();
                var sent = (await tx.Connection!.QueryAsync<(Guid Customer, long Sent)>(new CommandDefinition("""
                    SELECT customer_id, count(*) FROM campaign_deliveries WHERE customer_id = ANY (@ids) AND status = 'sent' AND at >= @weekStart
                    GROUP BY customer_id
                    """, new { ids, weekStart }, tx, cancellationToken: ct))).ToDictionary(r => r.Customer, r => r.Sent);
                var ttlSeconds = (long)Math.Ceiling((weekEnd - nowUtc + TimeSpan.FromHours(1)).TotalSeconds);
                var seeded = (long[])(await cache.ScriptEvaluateAsync(SeedAndIncrement,
                    missing.Select(i => (RedisKey)Key(customerIds[i], weekStart)).ToArray(),
                    [ttlSeconds, .. missing.Select(i => (RedisValue)sent.GetValueOrDefault(customerIds[i]))]))!;
                for (var k = 0; k < missing.Count; k++) counts[missing[k]] = seeded[k];
            }
            return counts.Select(n => n <= options.Value.FrequencyCapPerWeek ? CapOutcome.Allowed : CapOutcome.Capped).ToArray();
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            return customerIds.Select(_ => CapOutcome.Unavailable).ToArray();
        }
    }

    /// <summary>Each key that exists is incremented (its new count returned); -1 for one that does not (it is left missing).</summary>
    private const string IncrementExisting = """
        local counts = {}
        for i, key in ipairs(KEYS) do
          if redis.call('EXISTS', key) == 1 then counts[i] = redis.call('INCR', key) else counts[i] = -1 end
        end
        return counts
        """;

    /// <summary>
    /// Each key set to its seed (ARGV[i + 1]) with the TTL of ARGV[1] unless it exists by now (another send seeded it first), then
    /// incremented; the new counts returned.
    /// </summary>
    private const string SeedAndIncrement = """
        local counts = {}
        for i, key in ipairs(KEYS) do
          redis.call('SET', key, ARGV[i + 1], 'EX', ARGV[1], 'NX')
          counts[i] = redis.call('INCR', key)
        end
        return counts
        """;

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
