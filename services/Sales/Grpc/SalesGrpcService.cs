using Crm.Contracts;
using Crm.Sales.Activities;
using Crm.Sales.Leads;
using Crm.Sales.Opportunities;
using Crm.Sales.Reports;
using Crm.Sales.V1;
using Crm.ServiceDefaults.Data;
using Crm.ServiceDefaults.Errors;
using Crm.ServiceDefaults.Paging;
using Crm.ServiceDefaults.Security;
using Grpc.Core;
using Microsoft.Extensions.Options;

namespace Crm.Sales.Grpc;

/// <summary>crm.sales.v1.SalesService: validates, checks who may touch which record, calls the repositories, maps to the wire.</summary>
public sealed class SalesGrpcService(
    LeadRepository leads, LeadConversion conversion, OpportunityRepository opportunities, Receipts receipts, ParkedOrders parkedOrders, ActivityRepository activities,
    SalesReports reports, Pipeline pipeline, IOptions<SalesOptions> options, TimeProvider clock, ILogger<SalesGrpcService> logger)
    : SalesService.SalesServiceBase
{
    private readonly TimeZoneInfo _zone = TimeZoneInfo.FindSystemTimeZoneById(options.Value.TimeZone);

    // ---- leads ----

    [Allow(Roles.Sales, Roles.SalesManager)]
    public override async Task<Lead> CreateLead(CreateLeadRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var lead = ValidateLead(request.Lead ?? new LeadInput(), "lead.", v);
        var requestId = Rules.Optional(request.RequestId, "request_id", v, 100);
        v.ThrowIfInvalid();
        var (owner, team) = Scope.Of(context).Assign(request.Lead!.OwnerId, null);
        var (row, created) = await leads.CreateAsync(lead, owner, team, requestId, context.CancellationToken);
        if (created) logger.LogInformation("Lead {LeadId} created for {OwnerId} from {Source}", row.Id, row.OwnerId, row.SourceChannel);
        return Wire.ToProto(row);
    }

    [Allow(Roles.Sales, Roles.SalesManager)]
    public override async Task<ImportLeadsResponse> ImportLeads(ImportLeadsRequest request, ServerCallContext context)
    {
        var v = new Validator();
        v.Require(request.Leads.Count is > 0 and <= 500, "leads", "must hold 1-500 leads.");
        var importId = Rules.Optional(request.ImportId, "import_id", v, 100);
        v.ThrowIfInvalid();
        var scope = Scope.Of(context);
        var response = new ImportLeadsResponse();
        for (var i = 0; i < request.Leads.Count; i++)
        {
            var result = new ImportLeadResult { Index = i };
            try
            {
                var item = new Validator();
                var lead = ValidateLead(request.Leads[i], $"leads[{i}].", item);
                item.ThrowIfInvalid();
                var (owner, team) = scope.Assign(request.Leads[i].OwnerId, null);
                var (row, _) = await leads.CreateAsync(lead, owner, team, importId is null ? null : $"{importId}/{i}", context.CancellationToken);
                (result.Outcome, result.LeadId) = (ImportOutcome.Created, row.Id.ToString());
                response.Created++;
            }
            catch (ValidationException e)
            {
                (result.Outcome, result.Message) = (ImportOutcome.Invalid, Echo.Cut(e.Message, 300));
                response.Invalid++;
            }
            catch (AlreadyExistsException e)
            {
                (result.Outcome, result.DuplicateOf, result.Message) = (ImportOutcome.Duplicate, e.ResourceName, Echo.Cut(e.Message, 300));
                response.Duplicates++;
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.PermissionDenied)
            {
                (result.Outcome, result.Message) = (ImportOutcome.Invalid, "owner_id: " + e.Status.Detail);
                response.Invalid++;
            }
            response.Results.Add(result);
        }
        logger.LogInformation("Imported leads: {Created} created, {Duplicates} duplicates, {Invalid} invalid", response.Created, response.Duplicates, response.Invalid);
        return response;
    }

    [Allow(Roles.Sales, Roles.SalesManager)]
    public override async Task<Lead> GetLead(GetLeadRequest request, ServerCallContext context)
    {
        var id = Ids.Parse(request.LeadId, "lead_id");
        var lead = await leads.GetAsync(id, context.CancellationToken) ?? throw new NotFoundException("lead", id.ToString());
        Scope.Of(context).Require(lead.OwnerId, lead.OwnerTeam, "lead");
        return Wire.ToProto(lead);
    }

    [Allow(Roles.Sales, Roles.SalesManager)]
    public override async Task<ListLeadsResponse> ListLeads(ListLeadsRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var pageSize = PageToken.PageSize(request.PageSize, v);
        var filter = new LeadFilter(Wire.Status(request.Status), Rules.Optional(request.OwnerId, "owner_id", v, 100));
        var before = SeqToken(request.PageToken, filter.ToString(), v);
        v.ThrowIfInvalid();
        var page = await leads.ListAsync(Scope.Of(context), filter, before, pageSize + 1, context.CancellationToken);
        var response = new ListLeadsResponse();
        response.Leads.AddRange(page.Take(pageSize).Select(Wire.ToProto));
        if (page.Count > pageSize) response.NextPageToken = PageToken.Encode(page[pageSize - 1].Seq.ToString(), filter.ToString());
        return response;
    }

    [Allow(Roles.Sales, Roles.SalesManager)]
    public override async Task<Lead> SetLeadStatus(SetLeadStatusRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var id = Ids.Parse(request.LeadId, "lead_id", v);
        var status = Wire.Status(request.Status);
        if (status is null or LeadStatuses.Converted)
            v.Add("status", "must be new, contacted, qualified or disqualified (a lead becomes converted through ConvertLead).");
        var reason = Rules.Optional(request.Reason, "reason", v, 500);
        if (status == LeadStatuses.Disqualified && reason is null) v.Add("reason", "is required to disqualify a lead.");
        v.Require(request.Version >= 0, "version", "must not be negative.");
        v.ThrowIfInvalid();
        var scope = Scope.Of(context);
        var lead = await leads.UpdateAsync(id, request.Version, current => scope.Require(current.OwnerId, current.OwnerTeam, "lead"), current =>
        {
            if (current.Status == LeadStatuses.Converted)
                throw new PreconditionFailedException("LEAD_CONVERTED", $"leads/{id}", $"Lead {id} was converted; its status no longer changes.");
            if (current.Status == status) return null;
            return ("status = @status, disqualify_reason = @reason", new { status, reason = status == LeadStatuses.Disqualified ? reason : null });
        }, context.CancellationToken);
        return Wire.ToProto(lead);
    }

    [Allow(Roles.SalesManager)]
    public override async Task<Lead> AssignLead(AssignLeadRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var id = Ids.Parse(request.LeadId, "lead_id", v);
        var ownerId = Rules.Required(request.OwnerId, "owner_id", v, 100);
        var ownerTeam = Rules.Optional(request.OwnerTeam, "owner_team", v, 100);
        v.ThrowIfInvalid();
        var scope = Scope.Of(context);
        var (owner, team) = scope.Assign(ownerId, ownerTeam);
        var lead = await leads.UpdateAsync(id, 0, current => scope.Require(current.OwnerId, current.OwnerTeam, "lead"), current =>
        {
            if (current.Status == LeadStatuses.Converted)
                throw new PreconditionFailedException("LEAD_CONVERTED", $"leads/{id}", $"Lead {id} was converted; reassign its opportunity instead.");
            return current.OwnerId == owner && current.OwnerTeam == team ? null : ("owner_id = @owner, owner_team = @team", new { owner, team });
        }, context.CancellationToken);
        return Wire.ToProto(lead);
    }

    [Allow(Roles.Sales, Roles.SalesManager)]
    public override async Task<ConvertLeadResponse> ConvertLead(ConvertLeadRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var id = Ids.Parse(request.LeadId, "lead_id", v);
        var key = Rules.Required(request.IdempotencyKey, "idempotency_key", v, 100);
        var title = Rules.Optional(request.Title, "title", v, 200);
        var amount = Rules.Amount(request.Amount, "amount", v);
        var close = CloseDate(request.ExpectedCloseDate, "expected_close_date", v);
        var interest = Rules.Optional(request.ProductInterest, "product_interest", v, 500);
        v.ThrowIfInvalid();
        var scope = Scope.Of(context);
        var result = await conversion.ConvertAsync(new ConversionInput(id, key, title, amount, close!.Value, interest),
            lead => scope.Require(lead.OwnerId, lead.OwnerTeam, "lead"), scope.Subject, context.CancellationToken);
        return new ConvertLeadResponse
        {
            Lead = Wire.ToProto(result.Lead), Opportunity = Wire.ToProto(result.Opportunity, pipeline),
            CustomerId = result.CustomerId.ToString(), CustomerCreated = result.CustomerCreated,
        };
    }

    // ---- opportunities ----

    [Allow(Roles.Sales, Roles.SalesManager)]
    public override async Task<Opportunity> CreateOpportunity(CreateOpportunityRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var customerId = Ids.Parse(request.CustomerId, "customer_id", v);
        var title = Rules.Required(request.Title, "title", v, 200);
        var interest = Rules.Optional(request.ProductInterest, "product_interest", v, 500);
        var amount = Rules.Amount(request.Amount, "amount", v);
        var close = CloseDate(request.ExpectedCloseDate, "expected_close_date", v);
        var stage = StageRules.Parse(pipeline, request.Stage, "stage", v, required: false) ?? pipeline.First;
        if (stage.IsClosed) v.Add("stage", $"must be an open stage ({string.Join(", ", pipeline.Open.Select(s => s.Code))}); a new opportunity is not won or lost yet.");
        var ownerInput = Rules.Optional(request.OwnerId, "owner_id", v, 100);
        var requestId = Rules.Optional(request.RequestId, "request_id", v, 100);
        v.ThrowIfInvalid();
        var scope = Scope.Of(context);
        var (owner, team) = scope.Assign(ownerInput, null);
        var (row, created) = await opportunities.CreateAsync(new NewOpportunity(customerId, null, title, interest, amount, close!.Value, stage.Code, owner, team, requestId),
            scope.Subject, context.CancellationToken);
        if (created) logger.LogInformation("Opportunity {OpportunityId} opened for {OwnerId}", row.Id, row.OwnerId);
        return Wire.ToProto(row, pipeline);
    }

    [Allow(Roles.Sales, Roles.SalesManager)]
    public override async Task<Opportunity> GetOpportunity(GetOpportunityRequest request, ServerCallContext context) =>
        Wire.ToProto(await VisibleOpportunityAsync(Ids.Parse(request.OpportunityId, "opportunity_id"), context), pipeline);

    [Allow(Roles.Sales, Roles.SalesManager)]
    public override async Task<ListOpportunitiesResponse> ListOpportunities(ListOpportunitiesRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var pageSize = PageToken.PageSize(request.PageSize, v);
        var stage = StageRules.Parse(pipeline, request.Stage, "stage", v, required: false);
        var orderStatus = Rules.Optional(request.OrderStatus, "order_status", v, 20)?.ToLowerInvariant();
        if (orderStatus is not null && !ParkedOrders.Statuses.Contains(orderStatus))
            v.Add("order_status", $"'{Echo.Cut(request.OrderStatus)}' is not an order status ({string.Join(", ", ParkedOrders.Statuses)}).");
        var filter = new OpportunityFilter(Rules.Optional(request.OwnerId, "owner_id", v, 100), stage?.Code, Rules.OptionalId(request.CustomerId, "customer_id", v), orderStatus);
        var before = SeqToken(request.PageToken, filter.ToString(), v);
        v.ThrowIfInvalid();
        var page = await opportunities.ListAsync(Scope.Of(context), filter, before, pageSize + 1, context.CancellationToken);
        var response = new ListOpportunitiesResponse();
        response.Opportunities.AddRange(page.Take(pageSize).Select(o => Wire.ToProto(o, pipeline)));
        if (page.Count > pageSize) response.NextPageToken = PageToken.Encode(page[pageSize - 1].Seq.ToString(), filter.ToString());
        return response;
    }

    [Allow(Roles.Sales, Roles.SalesManager)]
    public override async Task<Opportunity> MoveStage(MoveStageRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var id = Ids.Parse(request.OpportunityId, "opportunity_id", v);
        var stage = StageRules.Parse(pipeline, request.Stage, "stage", v);
        var reason = Rules.Optional(request.Reason, "reason", v, 500);
        if (stage is { IsClosed: true } && reason is null) v.Add("reason", $"is required to close an opportunity as {stage.Code}.");
        v.Require(request.Version >= 0, "version", "must not be negative.");
        v.ThrowIfInvalid();
        var scope = Scope.Of(context);
        var row = await opportunities.MoveAsync(id, request.Version, stage!, reason, reopen: false, newCloseDate: null,
            o => scope.Require(o.OwnerId, o.OwnerTeam, "opportunity"), scope.Subject, context.CancellationToken);
        return Wire.ToProto(row, pipeline);
    }

    [Allow(Roles.Sales, Roles.SalesManager)]
    public override async Task<Opportunity> ReopenOpportunity(ReopenOpportunityRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var id = Ids.Parse(request.OpportunityId, "opportunity_id", v);
        var stage = StageRules.Parse(pipeline, request.Stage, "stage", v);
        if (stage is { IsClosed: true }) v.Add("stage", $"must be an open stage ({string.Join(", ", pipeline.Open.Select(s => s.Code))}).");
        var reason = Rules.Optional(request.Reason, "reason", v, 500);
        var close = request.ExpectedCloseDate is null ? null : CloseDate(request.ExpectedCloseDate, "expected_close_date", v);
        v.ThrowIfInvalid();
        var scope = Scope.Of(context);
        var row = await opportunities.MoveAsync(id, 0, stage!, reason ?? "reopened", reopen: true, close,
            o => scope.Require(o.OwnerId, o.OwnerTeam, "opportunity"), scope.Subject, context.CancellationToken);
        return Wire.ToProto(row, pipeline);
    }

    [Allow(Roles.Sales, Roles.SalesManager)]
    public override async Task<ListStageHistoryResponse> ListStageHistory(ListStageHistoryRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var id = Ids.Parse(request.OpportunityId, "opportunity_id", v);
        var pageSize = PageToken.PageSize(request.PageSize, v);
        var after = SeqToken(request.PageToken, id.ToString(), v) ?? 0;
        v.ThrowIfInvalid();
        await VisibleOpportunityAsync(id, context);
        var page = await opportunities.HistoryAsync(id, after, pageSize + 1, context.CancellationToken);
        var response = new ListStageHistoryResponse();
        response.Changes.AddRange(page.Take(pageSize).Select(Wire.ToProto));
        if (page.Count > pageSize) response.NextPageToken = PageToken.Encode(page[pageSize - 1].Id.ToString(), id.ToString());
        return response;
    }

    // ---- receipts ----

    [Allow(Roles.Sales, Roles.SalesManager)]
    public override async Task<RecordReceiptResponse> RecordReceipt(RecordReceiptRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var receiptId = Rules.Required(request.ReceiptId, "receipt_id", v, 100);
        var id = Ids.Parse(request.OpportunityId, "opportunity_id", v);
        var amount = Rules.Amount(request.Amount, "amount", v);
        var method = Rules.Required(request.Method, "method", v, 50).ToLowerInvariant();
        var paidAt = Rules.Time(request.PaidAt, "paid_at", v) ?? clock.UtcNowForDb();
        v.Require(paidAt <= clock.GetUtcNow().UtcDateTime.AddMinutes(5), "paid_at", "cannot be in the future.");
        v.ThrowIfInvalid();
        var scope = Scope.Of(context);
        var (receipt, opportunity) = await receipts.RecordAsync(new NewReceipt(receiptId, id, amount, method, paidAt),
            o => scope.Require(o.OwnerId, o.OwnerTeam, "opportunity"), scope.Subject, context.CancellationToken);
        return new RecordReceiptResponse { Receipt = Wire.ToProto(receipt), Opportunity = Wire.ToProto(opportunity, pipeline) };
    }

    [Allow(Roles.Sales, Roles.SalesManager)]
    public override async Task<ListReceiptsResponse> ListReceipts(ListReceiptsRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var id = Ids.Parse(request.OpportunityId, "opportunity_id", v);
        var pageSize = PageToken.PageSize(request.PageSize, v);
        (DateTime, string)? after = null;
        if (PageToken.Decode(request.PageToken, id.ToString(), v) is { } key)
        {
            var parts = key.Split('/', 2);
            if (parts.Length == 2 && long.TryParse(parts[0], out var ticks) && ticks is >= 0 and <= 3155378975999999999)
                after = (new DateTime(ticks, DateTimeKind.Utc), parts[1]);
            else v.Add("page_token", "is not a page token returned by this service.");
        }
        v.ThrowIfInvalid();
        await VisibleOpportunityAsync(id, context);
        var page = await receipts.ListAsync(id, after, pageSize + 1, context.CancellationToken);
        var response = new ListReceiptsResponse();
        response.Receipts.AddRange(page.Take(pageSize).Select(Wire.ToProto));
        if (page.Count > pageSize) response.NextPageToken = PageToken.Encode($"{page[pageSize - 1].PaidAt.Ticks}/{page[pageSize - 1].ReceiptId}", id.ToString());
        return response;
    }

    [Allow(Roles.Admin)]
    public override async Task<Opportunity> RetryOrder(RetryOrderRequest request, ServerCallContext context)
    {
        var id = Ids.Parse(request.OpportunityId, "opportunity_id");
        var row = await parkedOrders.RetryAsync(id, context.CancellationToken);
        if (row.OrderStatus == "pending") logger.LogInformation("Order of opportunity {OpportunityId} put back in the queue by {Subject}", id, Scope.Of(context).Subject);
        return Wire.ToProto(row, pipeline);
    }

    // ---- activities ----

    [Allow(Roles.Sales, Roles.SalesManager)]
    public override async Task<Activity> CreateActivity(CreateActivityRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var kind = Wire.Kind(request.Kind);
        if (kind is null) v.Add("kind", "is required: call, meeting, visit, note or task.");
        var subject = Rules.Required(request.Subject, "subject", v, 200);
        var body = Rules.Optional(request.Body, "body", v, 10_000) ?? "";
        var leadId = Rules.OptionalId(request.LeadId, "lead_id", v);
        var opportunityId = Rules.OptionalId(request.OpportunityId, "opportunity_id", v);
        var customerId = Rules.OptionalId(request.CustomerId, "customer_id", v);
        if (leadId is null && opportunityId is null && customerId is null && v.IsValid)
            v.Add("lead_id", "name the lead, opportunity or customer the activity belongs to.");
        var dueAt = Rules.Time(request.DueAt, "due_at", v);
        if (kind == ActivityKinds.Task && dueAt is null) v.Add("due_at", "is required for a task.");
        var ownerInput = Rules.Optional(request.OwnerId, "owner_id", v, 100);
        var requestId = Rules.Optional(request.RequestId, "request_id", v, 100);
        v.ThrowIfInvalid();
        var scope = Scope.Of(context);
        var ct = context.CancellationToken;
        // The linked lead / opportunity must exist and be the caller's to see; an opportunity also names its customer.
        if (leadId is { } l)
        {
            var lead = await leads.GetAsync(l, ct) ?? throw new NotFoundException("lead", l.ToString());
            scope.Require(lead.OwnerId, lead.OwnerTeam, "lead");
            customerId ??= lead.CustomerId;
        }
        if (opportunityId is { } o)
        {
            var opportunity = await VisibleOpportunityAsync(o, context);
            customerId ??= opportunity.CustomerId;
        }
        var (owner, team) = scope.Assign(ownerInput, null);
        var (row, _) = await activities.CreateAsync(new NewActivity(kind!, subject, body, leadId, opportunityId, customerId, dueAt, owner, team, requestId), ct);
        return Wire.ToProto(row);
    }

    [Allow(Roles.Sales, Roles.SalesManager)]
    public override async Task<Activity> CompleteActivity(CompleteActivityRequest request, ServerCallContext context)
    {
        var id = Ids.Parse(request.ActivityId, "activity_id");
        var scope = Scope.Of(context);
        return Wire.ToProto(await activities.CompleteAsync(id, a => scope.Require(a.OwnerId, a.OwnerTeam, "activity"), context.CancellationToken));
    }

    [Allow(Roles.Sales, Roles.SalesManager)]
    public override async Task<ListAgendaResponse> ListAgenda(ListAgendaRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var ownerInput = Rules.Optional(request.OwnerId, "owner_id", v, 100);
        var day = Rules.Date(request.Day, "day", v, required: false)
                  ?? DateOnly.FromDateTime(TimeZoneInfo.ConvertTime(clock.GetUtcNow(), _zone).DateTime);
        var pageSize = PageToken.PageSize(request.PageSize, v);
        var scope = Scope.Of(context);
        var owner = ownerInput ?? scope.Subject;
        var week = request.Span == AgendaSpan.Week;
        var start = week ? day.AddDays(-(((int)day.DayOfWeek + 6) % 7)) : day;
        var end = start.AddDays(week ? 7 : 1);
        var filters = $"{owner}|{start}|{end}";
        (DateTime, Guid)? after = null;
        if (PageToken.Decode(request.PageToken, filters, v) is { } key)
        {
            var parts = key.Split('/', 2);
            if (parts.Length == 2 && long.TryParse(parts[0], out var ticks) && ticks is >= 0 and <= 3155378975999999999 && Guid.TryParse(parts[1], out var last))
                after = (new DateTime(ticks, DateTimeKind.Utc), last);
            else v.Add("page_token", "is not a page token returned by this service.");
        }
        v.ThrowIfInvalid();
        // Someone else's agenda: a manager of the team (rows carry the owner's team) or admin; filtered per row below.
        var from = TimeZoneInfo.ConvertTimeToUtc(start.ToDateTime(TimeOnly.MinValue), _zone);
        var to = TimeZoneInfo.ConvertTimeToUtc(end.ToDateTime(TimeOnly.MinValue), _zone);
        var page = await activities.AgendaAsync(owner, from, to, after, pageSize + 1, context.CancellationToken);
        if (page.FirstOrDefault() is { } first) scope.Require(first.OwnerId, first.OwnerTeam, "agenda");
        else if (owner != scope.Subject && !scope.All && !scope.Manager)
            throw new RpcException(new Status(StatusCode.PermissionDenied, "A salesperson reads its own agenda only."));
        var response = new ListAgendaResponse();
        response.Activities.AddRange(page.Take(pageSize).Where(a => scope.CanSee(a.OwnerId, a.OwnerTeam)).Select(Wire.ToProto));
        if (page.Count > pageSize) response.NextPageToken = PageToken.Encode($"{page[pageSize - 1].DueAt!.Value.Ticks}/{page[pageSize - 1].Id}", filters);
        return response;
    }

    [Allow(Roles.Sales, Roles.SalesManager)]
    public override async Task<SearchActivitiesResponse> SearchActivities(SearchActivitiesRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var query = request.Query.Trim();
        v.Require(query.Length is > 0 and <= 100, "query", "is required, 1-100 characters.");
        var customerId = Rules.OptionalId(request.CustomerId, "customer_id", v);
        var ownerId = Rules.Optional(request.OwnerId, "owner_id", v, 100);
        var pageSize = PageToken.PageSize(request.PageSize, v);
        var filters = $"{query}|{customerId}|{ownerId}";
        var before = SeqToken(request.PageToken, filters, v);
        v.ThrowIfInvalid();
        var page = await activities.SearchAsync(Scope.Of(context), query, customerId, ownerId, before, pageSize + 1, context.CancellationToken);
        var response = new SearchActivitiesResponse();
        response.Activities.AddRange(page.Take(pageSize).Select(Wire.ToProto));
        if (page.Count > pageSize) response.NextPageToken = PageToken.Encode(page[pageSize - 1].Seq.ToString(), filters);
        return response;
    }

    // ---- reports ----

    [Allow(Roles.Sales, Roles.SalesManager, Roles.Marketing)]
    public override async Task<Forecast> GetForecast(GetForecastRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var ownerId = Rules.Optional(request.OwnerId, "owner_id", v, 100);
        var from = Rules.Date(request.From, "from", v, required: false);
        var to = Rules.Date(request.To, "to", v, required: false);
        if (from is not null && to is not null && to < from) v.Add("to", "must not be before from.");
        v.ThrowIfInvalid();
        var result = await reports.ForecastAsync(Scope.ForReports(context), ownerId, from, to, request.TotalsOnly, context.CancellationToken);
        var response = new Forecast { TotalWeighted = Common.V1.Money.FromDecimal(result.TotalWeighted) };
        response.Months.AddRange(result.Months.Select(Wire.ToProto));
        response.Quarters.AddRange(result.Quarters.Select(Wire.ToProto));
        response.Owners.AddRange(result.Owners.Select(Wire.ToProto));
        return response;
    }

    [Allow(Roles.Sales, Roles.SalesManager, Roles.Marketing)]
    public override async Task<PipelineReport> GetPipelineReport(GetPipelineReportRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var ownerId = Rules.Optional(request.OwnerId, "owner_id", v, 100);
        v.ThrowIfInvalid();
        var r = await reports.PipelineAsync(Scope.ForReports(context), ownerId, fromRows: false, context.CancellationToken);
        var response = new PipelineReport
        {
            Won = r.Won, Lost = r.Lost, WinRatePercent = Rules.Percent(r.Won, r.Won + r.Lost),
            AverageCycleDays = (r.AverageCycleDays ?? 0m).ToString("0.00", System.Globalization.CultureInfo.InvariantCulture),
        };
        response.Conversions.AddRange(r.Conversions.Select(c => new StageConversion
        {
            FromStage = c.From, ToStage = c.To, Reached = c.Reached, Advanced = c.Advanced, RatePercent = Rules.Percent(c.Advanced, c.Reached),
        }));
        response.OpenPipeline.AddRange(r.OpenPipeline.Select(s => new StageTotal
        {
            Stage = s.Stage, Probability = s.Probability, Opportunities = s.Opportunities,
            Amount = Common.V1.Money.FromDecimal(s.Amount), Weighted = Common.V1.Money.FromDecimal(s.Weighted),
        }));
        return response;
    }

    // ---- helpers ----

    private async Task<OpportunityRow> VisibleOpportunityAsync(Guid id, ServerCallContext context)
    {
        var row = await opportunities.GetAsync(id, context.CancellationToken) ?? throw new NotFoundException("opportunity", id.ToString());
        Scope.Of(context).Require(row.OwnerId, row.OwnerTeam, "opportunity");
        return row;
    }

    private NewLead ValidateLead(LeadInput input, string prefix, Validator v)
    {
        var name = Rules.Required(input.Name, prefix + "name", v, 100);
        string? phone = null, email = null;
        if (!string.IsNullOrWhiteSpace(input.Phone) && !PhoneNumber.TryNormalize(input.Phone, out phone!))
            v.Add(prefix + "phone", PhoneNumber.Rule + ".");
        if (!string.IsNullOrWhiteSpace(input.Email) && !EmailAddress.TryNormalize(input.Email, out email!))
            v.Add(prefix + "email", "is not a valid email address.");
        if (string.IsNullOrWhiteSpace(input.Phone) && string.IsNullOrWhiteSpace(input.Email))
            v.Add(prefix + "phone", "a lead needs a phone or an e-mail.");
        return new NewLead(name, phone, email,
            Rules.Optional(input.SourceChannel, prefix + "source_channel", v, 50)?.ToLowerInvariant(),
            Rules.Optional(input.Interest, prefix + "interest", v, 500),
            Rules.Optional(input.Notes, prefix + "notes", v, 2000));
    }

    /// <summary>An expected close date: required, and not before today in the brand's time zone.</summary>
    private DateOnly? CloseDate(Google.Type.Date? date, string field, Validator v)
    {
        var close = Rules.Date(date, field, v, required: true);
        var today = DateOnly.FromDateTime(TimeZoneInfo.ConvertTime(clock.GetUtcNow(), _zone).DateTime);
        if (close is { } c && c < today) v.Add(field, $"{c:yyyy-MM-dd} is in the past (today is {today:yyyy-MM-dd}).");
        return close;
    }

    private static long? SeqToken(string token, string filters, Validator v)
    {
        if (PageToken.Decode(token, filters, v) is not { } key) return null;
        if (long.TryParse(key, out var seq) && seq >= 0) return seq;
        v.Add("page_token", "is not a page token returned by this service.");
        return null;
    }
}
