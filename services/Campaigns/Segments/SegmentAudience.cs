using Crm.ServiceDefaults.Data;
using Crm.ServiceDefaults.Errors;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Crm.Campaigns.Segments;

/// <summary>A stored segment's filter as of now, for the segment API and for campaigns (membership, audience snapshots).</summary>
public sealed class SegmentAudience(SegmentStore store, IOptions<CampaignsOptions> options, TimeProvider clock)
{
    public SegmentVocabulary Vocabulary { get; } = new(options.Value);

    /// <summary>A stored segment was checked when saved; one that no longer passes (tiers, groups or stages reconfigured since) must be updated.</summary>
    public SegmentFilter Filter(SegmentRow segment)
    {
        var filter = SegmentFilter.Build(segment.ParsedRules, "rules", new Validator(), Vocabulary, clock.UtcNowForDb());
        return filter ?? throw new PreconditionFailedException("SEGMENT_RULES_INVALID", $"segment/{segment.SegmentId}",
            "The segment's stored rules no longer pass the checks (tiers, groups or stages were reconfigured): update the segment.");
    }

    public async Task<bool> ContainsAsync(Guid segmentId, Guid customerId, CancellationToken ct) =>
        await store.GetAsync(segmentId, ct) is { } segment && await store.ContainsAsync(Filter(segment), customerId, ct);

    /// <summary>Which of <paramref name="customerIds"/> are members now (none when the segment is gone), on the caller's transaction.</summary>
    public async Task<HashSet<Guid>> MembersAmongAsync(NpgsqlTransaction tx, Guid segmentId, Guid[] customerIds, CancellationToken ct) =>
        await SegmentStore.GetAsync(tx, segmentId, ct) is { } segment ? await SegmentStore.MembersAmongAsync(tx, Filter(segment), customerIds, ct) : [];

    public async Task<SnapshotRow> SnapshotAsync(Guid segmentId, string purpose, string? idempotencyKey, CancellationToken ct)
    {
        var segment = await store.RequireAsync(segmentId, ct);
        return await store.SnapshotAsync(segment, Filter(segment), purpose, idempotencyKey, ct);
    }
}
