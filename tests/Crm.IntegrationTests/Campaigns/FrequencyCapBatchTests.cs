using Crm.Campaigns.Marketing;
using Crm.IntegrationTests.Support;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;

namespace Crm.IntegrationTests.Campaigns;

/// <summary>
/// The weekly cap (2 a week in the suite) taken for a whole set of sends at once, on real Redis: a customer may appear several
/// times in one set, some counters exist already and some are new, and each entry is counted in order.
/// </summary>
[Collection(SuiteCollection.Name)]
public class FrequencyCapBatchTests(SuiteFixture suite)
{
    [Fact]
    public async Task A_set_of_sends_counts_each_entry_in_order_across_new_and_existing_counters()
    {
        var services = suite.Campaigns.Services;
        var cap = services.GetRequiredService<FrequencyCap>();
        var (a, b, c) = (Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid());
        var now = DateTime.UtcNow;
        await using var connection = await suite.CampaignsDb.OpenConnectionAsync();
        await using var tx = await connection.BeginTransactionAsync();

        // All three counters new (seeded from the delivery log: nothing sent this week); a three times.
        Assert.Equal([CapOutcome.Allowed, CapOutcome.Allowed, CapOutcome.Allowed, CapOutcome.Capped],
            await cap.TryTakeManyAsync(tx, [a, b, a, a], now, CancellationToken.None));
        // b's counter exists (1), c's is new; c twice.
        Assert.Equal([CapOutcome.Allowed, CapOutcome.Allowed, CapOutcome.Allowed, CapOutcome.Capped, CapOutcome.Capped],
            await cap.TryTakeManyAsync(tx, [b, c, c, b, c], now, CancellationToken.None));

        var redis = services.GetRequiredService<IConnectionMultiplexer>().GetDatabase();
        var week = cap.Week(now).Start;
        string Key(Guid customer) => $"campaigns:cap:{customer:N}:{week:yyyyMMdd}";
        Assert.Equal([3L, 3L, 3L], (await redis.StringGetAsync([Key(a), Key(b), Key(c)])).Select(v => (long)v));
        // The new counters expire after the week (plus an hour), not never.
        var ttl = await redis.KeyTimeToLiveAsync(Key(c));
        Assert.NotNull(ttl);
        Assert.InRange(ttl.Value, TimeSpan.FromHours(1), TimeSpan.FromDays(7) + TimeSpan.FromHours(1));

        await cap.GiveBackManyAsync([a, c], now);
        Assert.Equal([2L, 3L, 2L], (await redis.StringGetAsync([Key(a), Key(b), Key(c)])).Select(v => (long)v));
    }
}
