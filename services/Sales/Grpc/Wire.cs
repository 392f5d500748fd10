using Crm.Common.V1;
using Crm.Sales.Activities;
using Crm.Sales.Leads;
using Crm.Sales.Opportunities;
using Crm.Sales.Reports;
using Crm.Sales.V1;
using Google.Protobuf.WellKnownTypes;

namespace Crm.Sales.Grpc;

/// <summary>Rows to protobuf messages.</summary>
internal static class Wire
{
    public static Timestamp Utc(DateTime value) => Timestamp.FromDateTime(DateTime.SpecifyKind(value, DateTimeKind.Utc));
    private static Timestamp? Utc(DateTime? value) => value is { } v ? Utc(v) : null;
    public static Google.Type.Date Date(DateOnly d) => new() { Year = d.Year, Month = d.Month, Day = d.Day };

    public static LeadStatus Status(string status) => status switch
    {
        LeadStatuses.New => LeadStatus.New,
        LeadStatuses.Contacted => LeadStatus.Contacted,
        LeadStatuses.Qualified => LeadStatus.Qualified,
        LeadStatuses.Disqualified => LeadStatus.Disqualified,
        LeadStatuses.Converted => LeadStatus.Converted,
        _ => LeadStatus.Unspecified,
    };

    public static string? Status(LeadStatus status) => status switch
    {
        LeadStatus.New => LeadStatuses.New,
        LeadStatus.Contacted => LeadStatuses.Contacted,
        LeadStatus.Qualified => LeadStatuses.Qualified,
        LeadStatus.Disqualified => LeadStatuses.Disqualified,
        LeadStatus.Converted => LeadStatuses.Converted,
        _ => null,
    };

    public static string? Kind(ActivityKind kind) => kind switch
    {
        ActivityKind.Call => ActivityKinds.Call,
        ActivityKind.Meeting => ActivityKinds.Meeting,
        ActivityKind.Visit => ActivityKinds.Visit,
        ActivityKind.Note => ActivityKinds.Note,
        ActivityKind.Task => ActivityKinds.Task,
        _ => null,
    };

    private static ActivityKind Kind(string kind) => kind switch
    {
        ActivityKinds.Call => ActivityKind.Call,
        ActivityKinds.Meeting => ActivityKind.Meeting,
        ActivityKinds.Visit => ActivityKind.Visit,
        ActivityKinds.Note => ActivityKind.Note,
        ActivityKinds.Task => ActivityKind.Task,
        _ => ActivityKind.Unspecified,
    };

    public static Lead ToProto(LeadRow l) => new()
    {
        Id = l.Id.ToString(),
        Input = new LeadInput
        {
            Name = l.Name, Phone = l.Phone ?? "", Email = l.Email ?? "", SourceChannel = l.SourceChannel ?? "", Interest = l.Interest ?? "",
            Notes = l.Notes ?? "", OwnerId = l.OwnerId,
        },
        Status = Status(l.Status), DisqualifyReason = l.DisqualifyReason ?? "", OwnerId = l.OwnerId, OwnerTeam = l.OwnerTeam ?? "",
        CustomerId = l.CustomerId?.ToString() ?? "", OpportunityId = l.OpportunityId?.ToString() ?? "", Version = l.Version,
        CreatedAt = Utc(l.CreatedAt), UpdatedAt = Utc(l.UpdatedAt),
    };

    public static Opportunity ToProto(OpportunityRow o, Pipeline pipeline) => new()
    {
        Id = o.Id.ToString(), Title = o.Title, CustomerId = o.CustomerId.ToString(), LeadId = o.LeadId?.ToString() ?? "",
        ProductInterest = o.ProductInterest ?? "", Amount = Money.FromDecimal(o.Amount), ExpectedCloseDate = Date(o.ExpectedCloseDate),
        Stage = o.Stage, Probability = pipeline.Find(o.Stage)?.Probability ?? 0, OwnerId = o.OwnerId, OwnerTeam = o.OwnerTeam ?? "",
        CloseReason = o.CloseReason ?? "", ClosedAt = Utc(o.ClosedAt), Paid = Money.FromDecimal(o.Paid),
        Outstanding = Money.FromDecimal(pipeline.Find(o.Stage)?.IsWon == true ? o.Amount - o.Paid : 0),
        OrderStatus = o.OrderStatus, OrderId = o.OrderId?.ToString() ?? "", Version = o.Version,
        CreatedAt = Utc(o.CreatedAt), UpdatedAt = Utc(o.UpdatedAt),
    };

    public static StageChange ToProto(StageChangeRow h) => new()
    {
        FromStage = h.FromStage ?? "", ToStage = h.ToStage, Reason = h.Reason ?? "", ChangedBy = h.ChangedBy, ChangedAt = Utc(h.ChangedAt),
    };

    public static Receipt ToProto(ReceiptRow r) => new()
    {
        ReceiptId = r.ReceiptId, OpportunityId = r.OpportunityId.ToString(), Amount = Money.FromDecimal(r.Amount), Method = r.Method,
        PaidAt = Utc(r.PaidAt), RecordedBy = r.RecordedBy,
    };

    public static Activity ToProto(ActivityRow a) => new()
    {
        Id = a.Id.ToString(), Kind = Kind(a.Kind), Subject = a.Subject, Body = a.Body, LeadId = a.LeadId?.ToString() ?? "",
        OpportunityId = a.OpportunityId?.ToString() ?? "", CustomerId = a.CustomerId?.ToString() ?? "", DueAt = Utc(a.DueAt),
        DoneAt = Utc(a.DoneAt), OwnerId = a.OwnerId, OwnerTeam = a.OwnerTeam ?? "", RemindedAt = Utc(a.RemindedAt), CreatedAt = Utc(a.CreatedAt),
    };

    public static ForecastBucket ToProto(ForecastBucketRow b) => new()
    {
        Period = b.Period, OwnerId = b.OwnerId, Opportunities = b.Opportunities, Amount = Money.FromDecimal(b.Amount), Weighted = Money.FromDecimal(b.Weighted),
    };
}
