using System.Security.Cryptography;
using Crm.Campaigns.Segments;
using Crm.Campaigns.V1;
using Crm.ServiceDefaults.Data;
using Crm.ServiceDefaults.Errors;
using Crm.ServiceDefaults.Paging;
using Crm.ServiceDefaults.Security;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;

namespace Crm.Campaigns.Grpc;

/// <summary>crm.campaigns.v1.SegmentService: validates, builds the SQL filter of a rule tree, asks SegmentStore, maps to the wire.</summary>
public sealed class SegmentGrpcService(SegmentStore store, SegmentAudience audience, TimeProvider clock) : SegmentService.SegmentServiceBase
{
    private readonly SegmentVocabulary _vocabulary = audience.Vocabulary;

    [Allow(Roles.Marketing)]
    public override async Task<Segment> CreateSegment(CreateSegmentRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var name = Name(request.Name, v);
        SegmentFilter.Build(request.Rules, "rules", v, _vocabulary, clock.UtcNowForDb());
        v.ThrowIfInvalid();
        var row = await store.CreateAsync(name, request.Description.Trim(), request.Rules, Key(request.IdempotencyKey), context.Caller().Subject,
            context.CancellationToken);
        return ToProto(row);
    }

    [Allow(Roles.Marketing)]
    public override async Task<Segment> GetSegment(GetSegmentRequest request, ServerCallContext context) =>
        ToProto(await store.RequireAsync(Ids.Parse(request.SegmentId, "segment_id"), context.CancellationToken));

    [Allow(Roles.Marketing)]
    public override async Task<ListSegmentsResponse> ListSegments(ListSegmentsRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var pageSize = PageToken.PageSize(request.PageSize, v);
        (string, Guid)? after = null;
        if (PageToken.Decode(request.PageToken, "segments", v) is { } key)
        {
            var cut = key.LastIndexOf('/');
            if (cut > 0 && Guid.TryParse(key[(cut + 1)..], out var id)) after = (key[..cut], id);
            else v.Add("page_token", "is not a page token returned by this service.");
        }
        v.ThrowIfInvalid();
        var rows = await store.ListAsync(after, pageSize + 1, context.CancellationToken);
        var reply = new ListSegmentsResponse();
        reply.Segments.AddRange(rows.Take(pageSize).Select(ToProto));
        if (rows.Count > pageSize)
            reply.NextPageToken = PageToken.Encode($"{rows[pageSize - 1].Name}/{rows[pageSize - 1].SegmentId}", "segments");
        return reply;
    }

    [Allow(Roles.Marketing)]
    public override async Task<Segment> UpdateSegment(UpdateSegmentRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var id = Ids.Parse(request.SegmentId, "segment_id", v);
        v.Require(request.Version > 0, "version", "is required: the version you read (optimistic concurrency).");
        var name = Name(request.Name, v);
        SegmentFilter.Build(request.Rules, "rules", v, _vocabulary, clock.UtcNowForDb());
        v.ThrowIfInvalid();
        return ToProto(await store.UpdateAsync(id, request.Version, name, request.Description.Trim(), request.Rules, context.CancellationToken));
    }

    [Allow(Roles.Marketing)]
    public override async Task<DeleteSegmentResponse> DeleteSegment(DeleteSegmentRequest request, ServerCallContext context)
    {
        await store.DeleteAsync(Ids.Parse(request.SegmentId, "segment_id"), context.CancellationToken);
        return new DeleteSegmentResponse();
    }

    [Allow(Roles.Marketing)]
    public override async Task<CountSegmentResponse> CountSegment(CountSegmentRequest request, ServerCallContext context)
    {
        var now = clock.UtcNowForDb();
        var (filter, _) = await TargetAsync(request.SegmentId, request.Rules, now, null, context.CancellationToken);
        return new CountSegmentResponse { Count = await store.CountAsync(filter, context.CancellationToken), EvaluatedAt = Timestamp.FromDateTime(now) };
    }

    [Allow(Roles.Marketing)]
    public override async Task<PreviewSegmentResponse> PreviewSegment(PreviewSegmentRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var pageSize = PageToken.PageSize(request.PageSize, v);
        var (filter, fingerprint) = await TargetAsync(request.SegmentId, request.Rules, clock.UtcNowForDb(), v, context.CancellationToken);
        var after = Guid.Empty;
        if (PageToken.Decode(request.PageToken, fingerprint, v) is { } key && !Guid.TryParse(key, out after))
            v.Add("page_token", "is not a page token returned by this service.");
        v.ThrowIfInvalid();
        var rows = await store.PreviewAsync(filter, after, pageSize + 1, context.CancellationToken);
        var reply = new PreviewSegmentResponse();
        reply.Members.AddRange(rows.Take(pageSize).Select(m => new SegmentMember
        {
            CustomerId = m.CustomerId.ToString(), Tier = m.Tier ?? "", Region = m.Region ?? "", City = m.City ?? "", PointsBalance = m.PointsBalance ?? 0,
            RfmCell = m.RfmCell ?? "", RfmGroup = m.RfmGroup ?? "", ClvQuadrant = m.Quadrant ?? "", MarketingConsent = m.MarketingConsent,
        }));
        if (rows.Count > pageSize) reply.NextPageToken = PageToken.Encode(rows[pageSize - 1].CustomerId.ToString(), fingerprint);
        return reply;
    }

    [Allow(Roles.Marketing)]
    public override async Task<SegmentSnapshot> SnapshotSegment(SnapshotSegmentRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var id = Ids.Parse(request.SegmentId, "segment_id", v);
        v.ThrowIfInvalid();
        var ct = context.CancellationToken;
        return ToProto(await audience.SnapshotAsync(id, request.Purpose.Trim(), Key(request.IdempotencyKey), ct));
    }

    [Allow(Roles.Marketing)]
    public override async Task<ListSnapshotMembersResponse> ListSnapshotMembers(ListSnapshotMembersRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var id = Ids.Parse(request.SnapshotId, "snapshot_id", v);
        var pageSize = PageToken.PageSize(request.PageSize, v);
        var filters = "snapshot|" + id;
        var after = Guid.Empty;
        if (PageToken.Decode(request.PageToken, filters, v) is { } key && !Guid.TryParse(key, out after))
            v.Add("page_token", "is not a page token returned by this service.");
        v.ThrowIfInvalid();
        var ct = context.CancellationToken;
        if (await store.GetSnapshotAsync(id, ct) is null) throw new NotFoundException("snapshot", id.ToString());
        var members = await store.SnapshotMembersAsync(id, after, pageSize + 1, ct);
        var reply = new ListSnapshotMembersResponse();
        reply.CustomerIds.AddRange(members.Take(pageSize).Select(m => m.ToString()));
        if (members.Count > pageSize) reply.NextPageToken = PageToken.Encode(members[pageSize - 1].ToString(), filters);
        return reply;
    }

    /// <summary>The filter of a stored segment or of unsaved rules, and a fingerprint of it for page tokens.</summary>
    private async Task<(SegmentFilter Filter, string Fingerprint)> TargetAsync(string segmentId, SegmentRule? rules, DateTime now, Validator? outer,
        CancellationToken ct)
    {
        var v = outer ?? new Validator();
        if ((segmentId.Length > 0) == (rules is not null))
        {
            v.Add("segment_id", "set exactly one of segment_id and rules.");
            v.ThrowIfInvalid();
        }
        if (rules is not null)
        {
            var inline = SegmentFilter.Build(rules, "rules", v, _vocabulary, now);
            v.ThrowIfInvalid();
            return (inline!, "rules|" + Convert.ToHexString(SHA256.HashData(rules.ToByteArray())));
        }
        var id = Ids.Parse(segmentId, "segment_id", v);
        v.ThrowIfInvalid();
        var segment = await store.RequireAsync(id, ct);
        return (audience.Filter(segment), $"segment|{segment.SegmentId}|{segment.Version}");
    }

    private static string Name(string name, Validator v)
    {
        var trimmed = name.Trim();
        v.Require(trimmed.Length > 0, "name", "is required.");
        return trimmed;
    }

    private static string? Key(string key) => string.IsNullOrWhiteSpace(key) ? null : key.Trim();

    private static Segment ToProto(SegmentRow row) => new()
    {
        SegmentId = row.SegmentId.ToString(), Name = row.Name, Description = row.Description, Rules = row.ParsedRules, Version = row.Version,
        CreatedAt = Timestamp.FromDateTime(DateTime.SpecifyKind(row.CreatedAt, DateTimeKind.Utc)),
        UpdatedAt = Timestamp.FromDateTime(DateTime.SpecifyKind(row.UpdatedAt, DateTimeKind.Utc)),
    };

    private static SegmentSnapshot ToProto(SnapshotRow row) => new()
    {
        SnapshotId = row.SnapshotId.ToString(), SegmentId = row.SegmentId.ToString(), SegmentVersion = row.SegmentVersion, Purpose = row.Purpose,
        MemberCount = row.MemberCount, TakenAt = Timestamp.FromDateTime(DateTime.SpecifyKind(row.TakenAt, DateTimeKind.Utc)),
    };
}
