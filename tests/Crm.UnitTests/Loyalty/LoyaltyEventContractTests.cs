using System.Text.Json;
using Crm.Contracts;

namespace Crm.UnitTests.Loyalty;

/// <summary>The points and tier events' sequence number, as consumers read it (JSON, web casing, as the outbox writes it).</summary>
public class LoyaltyEventContractTests
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    [Fact]
    public void An_event_written_before_sequences_existed_reads_as_sequence_0()
    {
        const string old = """{"customerId":"0194a3b2-0000-7000-8000-000000000001","points":100,"growthValue":100,"source":"order","sourceRef":"o-1","balance":100,"totalGrowthValue":100,"earnedAt":"2026-03-15T02:00:00+00:00"}""";
        var earned = JsonSerializer.Deserialize<PointsEarned>(old, Json)!;
        Assert.Equal((100L, 0L), (earned.Balance, earned.Sequence));
    }

    [Fact]
    public void The_sequence_travels_with_every_points_and_tier_event()
    {
        var at = new DateTimeOffset(2027, 2, 10, 2, 0, 0, TimeSpan.Zero);
        var id = Guid.CreateVersion7();
        object[] events =
        [
            new PointsEarned(id, 5, 5, "activity", "check-in 2027-02-10", 105, 105, at, 2),
            new PointsDeducted(id, 20, "Gift handed over", 42, 85, at, 3),
            new PointsRedeemed(id, 5, "cloth", "redeem:k", 80, at, 4),
            new PointsExpired(id, 75, 5, at, 5),
            new PointsClawedBack(id, 5, 5, Guid.CreateVersion7(), "RF-1", 0, 100, at, 6),
            new TierChanged(id, "S2", "S1", 7_999, "refund", at, 7),
        ];
        Assert.Equal([2L, 3L, 4L, 5L, 6L, 7L], events.Select(e =>
            JsonDocument.Parse(JsonSerializer.Serialize(e, e.GetType(), Json)).RootElement.GetProperty("sequence").GetInt64()));
    }
}
