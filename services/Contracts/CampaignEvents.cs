namespace Crm.Contracts;

/// <summary>
/// A campaign moved from scheduled to running (its sends may start). Kind, Channel and Schedule are the lower-case names of
/// crm.campaigns.v1.CampaignKind / CampaignChannel / ScheduleKind without their prefix ("birthday", "sms", "recurring").
/// </summary>
public sealed record CampaignLaunched(Guid CampaignId, string Name, string Kind, string Channel, string Schedule, Guid? SegmentId, DateTimeOffset LaunchedAt);

/// <summary>
/// One campaign message was handed to its channel: once per campaign, customer and occurrence (the delivery log's key), in
/// the send's transaction. Occurrence names the run ("once", "2026-11-27T09:00", "birthday:2026", "tier:S3").
/// </summary>
public sealed record MessageSent(Guid CampaignId, Guid CustomerId, string Occurrence, string Channel, DateTimeOffset SentAt);
