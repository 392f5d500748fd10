using Crm.Contracts;
using Crm.IntegrationTests.Loyalty;
using Crm.IntegrationTests.Support;
using Dapper;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;

namespace Crm.IntegrationTests.Campaigns;

/// <summary>
/// TierChanged into the read model in batches (many events per transaction): a burst in which customers climb two tiers
/// with the events out of order, some delivered again under their own message id and some as a new message, leaves each
/// customer at the tier of their highest sequence, and the inbox holds each message id once.
/// </summary>
[Collection(SuiteCollection.Name)]
public class TierChangedBatchTests(SuiteFixture suite)
{
    [Fact]
    public async Task A_burst_out_of_order_with_redeliveries_leaves_each_customer_at_the_latest_tier()
    {
        var customers = Enumerable.Range(0, 6).Select(_ => Guid.NewGuid()).ToArray();
        var at = DateTimeOffset.UtcNow;
        // Each customer S1 → S2 (sequence 1) then S2 → S3 (sequence 2); the later event is published first.
        var toS3 = customers.Select(c => (Id: Guid.NewGuid(), Event: new TierChanged(c, "S2", "S3", 90_000, "batch", at.AddSeconds(1), 2))).ToList();
        var toS2 = customers.Select(c => (Id: Guid.NewGuid(), Event: new TierChanged(c, "S1", "S2", 9_000, "batch", at, 1))).ToList();
        var messages = toS3.Concat(toS2).ToList();
        var redelivered = toS2.Take(3).ToList();                                     // the same message id again
        var copies = toS2.Skip(3).Select(m => (Id: Guid.NewGuid(), m.Event)).ToList(); // the same event, a new message id

        var bus = suite.Campaigns.Services.GetRequiredService<IBus>();
        using (var consumed = new ConsumedMessages(bus))
        {
            await Task.WhenAll(messages.Concat(redelivered).Concat(copies).Select(m => bus.Publish(m.Event, c => c.MessageId = m.Id)));
            // Two consumers take TierChanged (the read model's and the tier welcome's): two deliveries per copy.
            foreach (var m in messages.Concat(copies)) await consumed.WaitAsync(m.Id, 2, "every message consumed");
            foreach (var m in redelivered) await consumed.WaitAsync(m.Id, 4, "the redelivered messages consumed twice");
        }

        await using var db = await suite.CampaignsDb.OpenConnectionAsync();
        var tiers = (await db.QueryAsync<(Guid Customer, string Tier, long Seq)>(
            "SELECT customer_id, tier, tier_seq FROM customers WHERE customer_id = ANY (@customers)", new { customers })).ToDictionary(r => r.Customer);
        foreach (var c in customers) Assert.Equal(("S3", 2L), (tiers[c].Tier, tiers[c].Seq));
        Assert.Equal(15, await db.ExecuteScalarAsync<int>(
            "SELECT count(*)::int FROM inbox_messages WHERE consumer = 'TierChangedConsumer' AND message_id = ANY (@ids)",
            new { ids = messages.Concat(copies).Select(m => m.Id).ToArray() }));
    }
}
