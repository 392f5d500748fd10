using Crm.Campaigns.Marketing;
using Crm.Campaigns.Segments;
using Crm.Campaigns.V1;
using Crm.ServiceDefaults.Errors;
using Crm.ServiceDefaults.Paging;
using Crm.ServiceDefaults.Security;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;

namespace Crm.Campaigns.Grpc;

/// <summary>crm.campaigns.v1.CampaignService: validates, asks CampaignStore / CampaignDispatcher, maps to the wire.</summary>
public sealed class CampaignGrpcService(CampaignStore store, CampaignRunner runner, SegmentStore segments,
    CampaignRewards rewards, Simulation simulation, Attribution attribution)
    : CampaignService.CampaignServiceBase
{
    [Allow(Roles.Marketing)]
    public override async Task<Campaign> CreateCampaign(CreateCampaignRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var name = request.Name.Trim();
        v.Require(name.Length > 0, "name", "is required.");
        v.Require(request.Kind != CampaignKind.Unspecified, "kind", "is required.");
        v.Require(request.Channel != CampaignChannel.Unspecified, "channel", "is required.");
        v.Require(request.Template.Trim().Length > 0, "template", "is required.");
        if (Templates.UnknownFields(request.Template).FirstOrDefault() is { } unknown)
            v.Add("template", $"{{{Echo.Cut(unknown)}}} is not a field; use {string.Join(", ", Templates.Fields.Select(f => "{" + f + "}"))}.");
        Guid? segmentId = null;
        if (request.SegmentId.Length > 0) segmentId = Ids.Parse(request.SegmentId, "segment_id", v);
        else v.Require(request.Kind == CampaignKind.TierWelcome, "segment_id", "is required (only a tier welcome may go to every upgraded customer).");
        var schedule = request.Schedule ?? new CampaignSchedule();
        switch (schedule.Kind)
        {
            case ScheduleKind.Unspecified:
                v.Add("schedule.kind", "is required.");
                break;
            case ScheduleKind.Once:
                v.Require(schedule.StartAt is not null, "schedule.start_at", "is required for a one-off campaign.");
                break;
            case ScheduleKind.Recurring:
                if (Cron.TryParse(schedule.Cron, out var cronError) is null) v.Add("schedule.cron", cronError);
                break;
            case ScheduleKind.OnEvent:
                v.Require(request.Kind is CampaignKind.TierWelcome or CampaignKind.Birthday or CampaignKind.WinBack or CampaignKind.PointsExpiring,
                    "schedule.kind", "ON_EVENT is available for TIER_WELCOME (TierChanged), BIRTHDAY (the day), WIN_BACK (a churn risk rise) and "
                    + "POINTS_EXPIRING (points expiring soon) only.");
                break;
        }
        var give = await rewards.ValidateAsync(request, v, context.CancellationToken);
        v.ThrowIfInvalid();
        var ct = context.CancellationToken;
        if (segmentId is { } sid && await segments.GetAsync(sid, ct) is null) throw new NotFoundException("segment", sid.ToString());
        var row = await store.CreateAsync(new CampaignRow
        {
            Name = name, Kind = (short)request.Kind, SegmentId = segmentId, Channel = (short)request.Channel, Template = request.Template,
            ScheduleKind = (short)schedule.Kind, StartAt = schedule.StartAt?.ToDateTime(), Cron = schedule.Cron.Trim(),
            RewardId = give.RewardId, ControlSharePercent = give.ControlSharePercent, AttributionWindowDays = give.AttributionWindowDays,
        }, string.IsNullOrWhiteSpace(request.IdempotencyKey) ? null : request.IdempotencyKey.Trim(), ct);
        return ToProto(row);
    }

    [Allow(Roles.Marketing)]
    public override async Task<Campaign> GetCampaign(GetCampaignRequest request, ServerCallContext context) =>
        ToProto(await store.RequireAsync(Ids.Parse(request.CampaignId, "campaign_id"), context.CancellationToken));

    [Allow(Roles.Marketing)]
    public override async Task<ListCampaignsResponse> ListCampaigns(ListCampaignsRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var pageSize = PageToken.PageSize(request.PageSize, v);
        Guid? before = null;
        if (PageToken.Decode(request.PageToken, "campaigns", v) is { } key)
        {
            if (Guid.TryParse(key, out var id)) before = id;
            else v.Add("page_token", "is not a page token returned by this service.");
        }
        v.ThrowIfInvalid();
        var rows = await store.ListAsync(before, pageSize + 1, context.CancellationToken);
        var reply = new ListCampaignsResponse();
        reply.Campaigns.AddRange(rows.Take(pageSize).Select(ToProto));
        if (rows.Count > pageSize) reply.NextPageToken = PageToken.Encode(rows[pageSize - 1].CampaignId.ToString(), "campaigns");
        return reply;
    }

    [Allow(Roles.Marketing)]
    public override async Task<Campaign> ChangeCampaignState(ChangeCampaignStateRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var id = Ids.Parse(request.CampaignId, "campaign_id", v);
        v.Require(request.Version > 0, "version", "is required: the version you read (optimistic concurrency).");
        v.Require(request.State != CampaignState.Unspecified, "state", "is required.");
        v.ThrowIfInvalid();
        return ToProto(await store.ChangeStateAsync(id, request.Version, request.State, context.CancellationToken));
    }

    [Allow(Roles.Marketing)]
    public override async Task<RunCampaignResponse> RunCampaign(RunCampaignRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var id = Ids.Parse(request.CampaignId, "campaign_id", v);
        var occurrence = request.Occurrence.Trim();
        v.ThrowIfInvalid();
        if (occurrence.Length == 0) occurrence = "once";
        var ct = context.CancellationToken;
        var campaign = await store.RequireAsync(id, ct);
        if (campaign.State != CampaignStates.Key(CampaignState.Running))
            throw new PreconditionFailedException("CAMPAIGN_STATE", $"campaign/{id}", $"Only a running campaign sends; this one is {campaign.State}.");
        if (campaign.SegmentId is not { } segmentId)
            throw new PreconditionFailedException("CAMPAIGN_NO_SEGMENT", $"campaign/{id}", "This campaign sends on its event only: it has no segment to run over.");

        return await runner.RunAsync(campaign, segmentId, occurrence, ct);
    }

    [Allow(Roles.Marketing)]
    public override async Task<ListDeliveriesResponse> ListDeliveries(ListDeliveriesRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var id = Ids.Parse(request.CampaignId, "campaign_id", v);
        var pageSize = PageToken.PageSize(request.PageSize, v);
        var filters = "deliveries|" + id;
        (Guid, string)? after = null;
        if (PageToken.Decode(request.PageToken, filters, v) is { } key)
        {
            var cut = key.IndexOf('/');
            if (cut > 0 && Guid.TryParse(key[..cut], out var customer)) after = (customer, key[(cut + 1)..]);
            else v.Add("page_token", "is not a page token returned by this service.");
        }
        v.ThrowIfInvalid();
        var ct = context.CancellationToken;
        await store.RequireAsync(id, ct);
        var rows = await store.DeliveriesAsync(id, after, pageSize + 1, ct);
        var reply = new ListDeliveriesResponse();
        reply.Deliveries.AddRange(rows.Take(pageSize).Select(d => new Delivery
        {
            CustomerId = d.CustomerId.ToString(), Occurrence = d.Occurrence, Channel = (CampaignChannel)(d.Channel ?? 0), Message = d.Message ?? "",
            At = Timestamp.FromDateTime(DateTime.SpecifyKind(d.At, DateTimeKind.Utc)),
            NotBefore = d.NotBefore is { } notBefore ? Timestamp.FromDateTime(DateTime.SpecifyKind(notBefore, DateTimeKind.Utc)) : null,
            Status = d.Status switch
            {
                "sent" => DeliveryStatus.Sent, "no_consent" => DeliveryStatus.NoConsent, "capped" => DeliveryStatus.Capped, "control" => DeliveryStatus.Control, _ => DeliveryStatus.Deferred,
            },
        }));
        if (rows.Count > pageSize) reply.NextPageToken = PageToken.Encode($"{rows[pageSize - 1].CustomerId}/{rows[pageSize - 1].Occurrence}", filters);
        return reply;
    }

    // Rewards, control group, simulation, attribution.

    [Allow(Roles.Marketing)]
    public override async Task<SimulateCampaignResponse> SimulateCampaign(SimulateCampaignRequest request, ServerCallContext context)
    {
        var campaign = await store.RequireAsync(Ids.Parse(request.CampaignId, "campaign_id"), context.CancellationToken);
        return await simulation.SimulateAsync(campaign, context.CancellationToken);
    }

    [Allow(Roles.Marketing)]
    public override async Task<CampaignReport> GetCampaignReport(GetCampaignReportRequest request, ServerCallContext context)
    {
        var campaign = await store.RequireAsync(Ids.Parse(request.CampaignId, "campaign_id"), context.CancellationToken);
        return await attribution.ReportAsync(campaign, context.CancellationToken);
    }

    private static Campaign ToProto(CampaignRow c) => new()
    {
        RewardId = c.RewardId ?? "", ControlSharePercent = c.ControlSharePercent, AttributionWindowDays = c.AttributionWindowDays,
        CampaignId = c.CampaignId.ToString(), Name = c.Name, Kind = (CampaignKind)c.Kind, State = CampaignStates.Parse(c.State),
        SegmentId = c.SegmentId?.ToString() ?? "", Channel = (CampaignChannel)c.Channel, Template = c.Template, Version = c.Version,
        Schedule = new CampaignSchedule
        {
            Kind = (ScheduleKind)c.ScheduleKind, Cron = c.Cron,
            StartAt = c.StartAt is { } s ? Timestamp.FromDateTime(DateTime.SpecifyKind(s, DateTimeKind.Utc)) : null,
        },
        CreatedAt = Timestamp.FromDateTime(DateTime.SpecifyKind(c.CreatedAt, DateTimeKind.Utc)),
        UpdatedAt = Timestamp.FromDateTime(DateTime.SpecifyKind(c.UpdatedAt, DateTimeKind.Utc)),
    };
}
