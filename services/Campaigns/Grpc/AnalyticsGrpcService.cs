using System.Globalization;
using Crm.Campaigns.Analytics;
using Crm.Campaigns.ReadModel;
using Crm.Campaigns.Reports;
using Crm.Campaigns.V1;
using Crm.Common.V1;
using Crm.ServiceDefaults.Errors;
using Crm.ServiceDefaults.Paging;
using Crm.ServiceDefaults.Security;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;

namespace Crm.Campaigns.Grpc;

/// <summary>crm.campaigns.v1.AnalyticsService: validates, asks AnalyticsQueries / SalesReports / Rebuilder, maps to the wire.</summary>
public sealed class AnalyticsGrpcService(AnalyticsQueries analytics, StoredScores stored, ScoreRecompute recompute, SalesReports reports, Rebuilder rebuilder)
    : AnalyticsService.AnalyticsServiceBase
{
    private const int MaxRangeDays = 3660;

    [Allow(Roles.Marketing)]
    public override async Task<CustomerAnalytics> GetCustomerAnalytics(GetCustomerAnalyticsRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var customerId = Ids.Parse(request.CustomerId, "customer_id", v);
        var asOf = AsOf(request.AsOf, v);
        var horizon = Horizon(request.HorizonDays, v);
        v.ThrowIfInvalid();
        var ct = context.CancellationToken;
        if (!await analytics.IsKnownAsync(customerId, ct)) throw new NotFoundException("customer", customerId.ToString());

        if (await StoredRunAsync(request.AsOf, request.PopulationTag, request.HorizonDays, ct) is { } run)
        {
            var models = await ModelsOfAsync(run, ct);
            if (await stored.GetAsync(customerId, ct) is { } score) return ToProto(score, models, run.AsOf, run.HorizonDays);
            // Not in the run yet (registered since): scored alone as of now against the run's models, unranked until the next run.
            var engine = analytics.Engine;
            var now = analytics.Now;
            var alone = engine.Score(await analytics.LoadAsync(engine, now, null, customerId, ct), now, models, run.HorizonDays)[0];
            return ToProto(alone with { Decile = 0, Quadrant = QuadrantKind.Unspecified }, models, now, run.HorizonDays);
        }
        var (scores, fitted) = await analytics.ScoreAsync(asOf, Tag(request.PopulationTag), horizon, customerId, ct);
        return ToProto(scores.First(x => x.Facts.CustomerId == customerId), fitted, asOf, horizon);
    }

    [Allow(Roles.Marketing)]
    public override async Task<ListCustomerAnalyticsResponse> ListCustomerAnalytics(ListCustomerAnalyticsRequest request, ServerCallContext context)
    {
        var v = new Validator();
        v.Require(request.Kind is not (DistributionKind.Unspecified or DistributionKind.SalesDeciles) && System.Enum.IsDefined(request.Kind), "kind",
            "must name a distribution of customers (not sales deciles).");
        v.Require(!string.IsNullOrWhiteSpace(request.Bucket), "bucket", "is required: a bucket key as GetDistribution returns it.");
        var asOf = AsOf(request.AsOf, v);
        var horizon = Horizon(request.HorizonDays, v);
        var pageSize = PageToken.PageSize(request.PageSize, v);
        var filters = $"customers|{request.Kind}|{request.Bucket}|{request.PopulationTag}|{horizon}";
        var after = Guid.Empty;
        var fromStore = false;
        if (PageToken.Decode(request.PageToken, filters, v) is { } key)
        {
            // "<as_of ticks>/<last id>" for pages computed on request, "stored/<last id>" for pages of the stored run.
            var parts = key.Split('/');
            if (parts.Length == 2 && parts[0] == "stored" && Guid.TryParse(parts[1], out after))
                fromStore = true;
            else if (parts.Length == 2 && long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var ticks)
                && ticks is > 0 and <= 3155378975999999999 && Guid.TryParse(parts[1], out after))
                asOf = new DateTime(ticks, DateTimeKind.Utc);
            else
                v.Add("page_token", "is not a page token returned by this service.");
        }
        v.ThrowIfInvalid();
        var ct = context.CancellationToken;

        var run = request.PageToken.Length == 0 || fromStore ? await StoredRunAsync(request.AsOf, request.PopulationTag, request.HorizonDays, ct) : null;
        if (run is not null)
        {
            var storedModels = await ModelsOfAsync(run, ct);
            if (request.Kind == DistributionKind.Quadrants && storedModels is null)
                throw new PreconditionFailedException("MODELS_NOT_FITTED", "models", "Quadrants need the lifetime-value models: call FitModels first.");
            var rows = await stored.PageAsync(ColumnOf(request.Kind), request.Bucket.Trim(), after, pageSize + 1, ct);
            var storedReply = new ListCustomerAnalyticsResponse();
            storedReply.Customers.AddRange(rows.Take(pageSize).Select(s => ToProto(s, storedModels, run.AsOf, run.HorizonDays)));
            if (rows.Count > pageSize) storedReply.NextPageToken = PageToken.Encode($"stored/{rows[pageSize - 1].Facts.CustomerId}", filters);
            return storedReply;
        }

        var (scores, models) = await analytics.ScoreAsync(asOf, Tag(request.PopulationTag), horizon, null, ct);
        if (request.Kind == DistributionKind.Quadrants && models is null)
            throw new PreconditionFailedException("MODELS_NOT_FITTED", "models", "Quadrants need the lifetime-value models: call FitModels first.");
        Func<CustomerScore, string?> bucketOf = request.Kind switch
        {
            DistributionKind.RfmCells => s => s.Facts.Orders > 0 ? s.Cell : null,
            DistributionKind.RfmGroups => s => s.Facts.Orders > 0 ? s.Group : null,
            DistributionKind.Quadrants => s => s.Facts.Orders > 0 ? QuadrantKey(s.Quadrant) : null,
            DistributionKind.CustomerDeciles => s => s.Decile > 0 ? s.Decile.ToString(CultureInfo.InvariantCulture) : null,
            DistributionKind.Ladder => s => s.LadderStage,
            _ => s => s.Facts.Orders > 0 ? s.Churn.ToString().ToLowerInvariant() : null,
        };
        var bucket = request.Bucket.Trim();
        var page = scores.Where(s => bucketOf(s) == bucket && s.Facts.CustomerId.CompareTo(after) > 0)
            .OrderBy(s => s.Facts.CustomerId).Take(pageSize + 1).ToList();
        var reply = new ListCustomerAnalyticsResponse();
        reply.Customers.AddRange(page.Take(pageSize).Select(s => ToProto(s, models, asOf, horizon)));
        if (page.Count > pageSize)
            reply.NextPageToken = PageToken.Encode($"{asOf.Ticks}/{page[pageSize - 1].Facts.CustomerId}", filters);
        return reply;
    }

    private static CustomerAnalytics ToProto(CustomerScore s, Analytics.FittedModels? models, DateTime asOf, int horizon)
    {
        var c = s.Facts;
        var reply = new CustomerAnalytics
        {
            CustomerId = c.CustomerId.ToString(), AsOf = Timestamp.FromDateTime(asOf), OrderCount = c.Orders, NetSpend = Money.FromDecimal(c.NetSpend),
            FirstOrderAt = c.FirstOrderAt is { } f ? Timestamp.FromDateTime(f) : null, LastOrderAt = c.LastOrderAt is { } l ? Timestamp.FromDateTime(l) : null,
            Orders12M = c.OrdersCurrent, Spend12M = Money.FromDecimal(c.SpendCurrent), Orders24M = c.OrdersWindow, Spend24M = Money.FromDecimal(c.SpendWindow),
            RecencyScore = s.R, FrequencyScore = s.F, MonetaryScore = s.M, RfmCell = s.Cell, RfmGroup = s.Group,
            ModelFitted = models is not null, PActive = s.PActive, ExpectedPurchases = s.ExpectedPurchases, HorizonDays = horizon,
            ExpectedOrderValue = Money.FromDecimal(s.ExpectedOrderValue), Clv = Money.FromDecimal(s.Clv), Quadrant = (Quadrant)(int)s.Quadrant,
            SpendDecile = s.Decile, LadderStage = s.LadderStage, ChurnRisk = (ChurnRisk)(int)s.Churn, ChurnBasis = s.ChurnBasis,
            DaysSinceLastOrder = s.DaysSinceLastOrder, Tier = c.Tier ?? "", PointsBalance = c.PointsBalance ?? 0, BirthdayMonth = c.BirthdayMonth ?? 0,
            Region = c.Region ?? "", MarketingConsent = c.MarketingConsent, RecomputeRunId = s.RunId,
        };
        reply.Tags.AddRange(c.Tags ?? []);
        return reply;
    }

    [Allow(Roles.Marketing)]
    public override async Task<Distribution> GetDistribution(GetDistributionRequest request, ServerCallContext context)
    {
        var v = new Validator();
        v.Require(request.Kind != DistributionKind.Unspecified && System.Enum.IsDefined(request.Kind), "kind", "must name a distribution.");
        var asOf = AsOf(request.AsOf, v);
        var horizon = Horizon(request.HorizonDays, v);
        v.ThrowIfInvalid();
        var ct = context.CancellationToken;
        var tag = Tag(request.PopulationTag);

        IReadOnlyList<Bucket> buckets;
        if (request.Kind == DistributionKind.SalesDeciles)
        {
            buckets = Engine.Deciles(await analytics.OrderValuesAsync(asOf, tag, ct));
        }
        else if (await StoredRunAsync(request.AsOf, request.PopulationTag, request.HorizonDays, ct) is { } run)
        {
            asOf = run.AsOf;
            var column = ColumnOf(request.Kind);
            var rows = await stored.DistributionAsync(column, ct);
            buckets = column switch
            {
                StoredScores.Column.RfmCell => rows.OrderByDescending(b => b.Key, StringComparer.Ordinal).ToList(),
                StoredScores.Column.RfmGroup => Ordered(rows.ToList(), analytics.Options.RfmGroups.Select(g => g.Name)),
                StoredScores.Column.Quadrant => run.ModelFitId is null
                    ? throw new PreconditionFailedException("MODELS_NOT_FITTED", "models", "Quadrants need the lifetime-value models: call FitModels first.")
                    : Ordered(rows.ToList(), ["vip", "growable", "maintain", "abandon"]),
                StoredScores.Column.Decile => Ordered(rows.ToList(), Enumerable.Range(1, 10).Select(d => d.ToString(CultureInfo.InvariantCulture))),
                StoredScores.Column.Ladder => Ordered(rows.ToList(), analytics.Options.Ladder.Select(l => l.Stage).Append("prospect")),
                _ => Ordered(rows.ToList(), ["low", "medium", "high"]),
            };
        }
        else
        {
            var (scores, models) = await analytics.ScoreAsync(asOf, tag, horizon, null, ct);
            var buyers = scores.Where(s => s.Facts.Orders > 0).ToList();
            buckets = request.Kind switch
            {
                DistributionKind.RfmCells => Group(buyers, s => s.Cell).OrderByDescending(b => b.Key, StringComparer.Ordinal).ToList(),
                DistributionKind.RfmGroups => Ordered(Group(buyers, s => s.Group), analytics.Options.RfmGroups.Select(g => g.Name)),
                DistributionKind.Quadrants => models is null
                    ? throw new PreconditionFailedException("MODELS_NOT_FITTED", "models", "Quadrants need the lifetime-value models: call FitModels first.")
                    : Ordered(Group(buyers, s => QuadrantKey(s.Quadrant)), ["vip", "growable", "maintain", "abandon"]),
                DistributionKind.CustomerDeciles => Engine.Deciles(scores.Select(s => s.Facts.SpendCurrent).ToList()),
                DistributionKind.Ladder => Ordered(Group(scores, s => s.LadderStage), analytics.Options.Ladder.Select(l => l.Stage).Append("prospect")),
                _ => Ordered(Group(buyers, s => s.Churn.ToString().ToLowerInvariant()), ["low", "medium", "high"]),
            };
        }

        var totalCount = buckets.Sum(b => b.Count);
        var totalRevenue = buckets.Sum(b => b.Revenue);
        var reply = new Distribution
        {
            Kind = request.Kind, AsOf = Timestamp.FromDateTime(asOf), TotalCount = totalCount, TotalRevenue = Money.FromDecimal(totalRevenue),
        };
        reply.Buckets.AddRange(buckets.Select(b => new DistributionBucket
        {
            Key = b.Key, Count = b.Count, Revenue = Money.FromDecimal(b.Revenue),
            CountSharePercent = totalCount == 0 ? 0 : 100.0 * b.Count / totalCount,
            RevenueSharePercent = totalRevenue == 0 ? 0 : (double)(100m * b.Revenue / totalRevenue),
        }));
        return reply;
    }

    [Allow(Roles.Marketing, Roles.Sales, Roles.SalesManager)]
    public override async Task<SalesReport> GetSalesReport(GetSalesReportRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var (from, to) = Range(request.From, request.To, "from", "to", v);
        var unit = request.Granularity switch
        {
            Granularity.Year => PeriodUnit.Year,
            Granularity.Quarter => PeriodUnit.Quarter,
            Granularity.Month => PeriodUnit.Month,
            Granularity.IsoWeek => PeriodUnit.IsoWeek,
            _ => (PeriodUnit?)null,
        };
        v.Require(unit is not null, "granularity", "must be year, quarter, month or ISO week.");
        v.ThrowIfInvalid();

        var (periods, total) = await reports.ReportAsync(unit!.Value, analytics.Options.TimeZone, from, to, Tag(request.StoreId), Tag(request.Channel),
            context.CancellationToken);
        var reply = new SalesReport { TimeZone = analytics.Options.TimeZone, Total = ToProto(total, "total", null) };
        reply.Periods.AddRange(periods.Select(p => ToProto(p, SalesReports.Label(unit.Value, p.StartLocal), p.StartLocal)));
        return reply;
    }

    [Allow(Roles.Marketing, Roles.Sales, Roles.SalesManager)]
    public override async Task<ListTopSkusResponse> ListTopSkus(ListTopSkusRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var (from, to) = Range(request.From, request.To, "from", "to", v);
        v.Require(request.Ranking is SkuRanking.Quantity or SkuRanking.Revenue, "ranking", "must be quantity or revenue.");
        var pageSize = PageToken.PageSize(request.PageSize, v);
        var filters = $"top|{from:O}|{to:O}|{request.Ranking}|{request.StoreId}";
        var offset = Offset(request.PageToken, filters, v);
        v.ThrowIfInvalid();

        var rows = await reports.TopSkusAsync(request.Ranking == SkuRanking.Revenue, from, to, Tag(request.StoreId), offset, pageSize + 1, context.CancellationToken);
        var reply = new ListTopSkusResponse();
        reply.Skus.AddRange(rows.Take(pageSize).Select(r => new SkuSales
        {
            Sku = r.Sku, ProductName = r.ProductName ?? "", Quantity = r.Quantity, Revenue = Money.FromDecimal(r.Revenue),
        }));
        if (rows.Count > pageSize) reply.NextPageToken = PageToken.Encode((offset + pageSize).ToString(CultureInfo.InvariantCulture), filters);
        return reply;
    }

    [Allow(Roles.Marketing, Roles.Sales, Roles.SalesManager)]
    public override async Task<ListFastestGrowingSkusResponse> ListFastestGrowingSkus(ListFastestGrowingSkusRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var (baseFrom, baseTo) = Range(request.BaseFrom, request.BaseTo, "base_from", "base_to", v);
        var (from, to) = Range(request.From, request.To, "from", "to", v);
        var pageSize = PageToken.PageSize(request.PageSize, v);
        var filters = $"growth|{baseFrom:O}|{baseTo:O}|{from:O}|{to:O}|{request.StoreId}";
        var offset = Offset(request.PageToken, filters, v);
        v.ThrowIfInvalid();

        var rows = await reports.FastestGrowingAsync(baseFrom, baseTo, from, to, Tag(request.StoreId), offset, pageSize + 1, context.CancellationToken);
        var reply = new ListFastestGrowingSkusResponse();
        reply.Skus.AddRange(rows.Take(pageSize).Select(r => new SkuGrowth
        {
            Sku = r.Sku, ProductName = r.ProductName ?? "", BaseRevenue = Money.FromDecimal(r.BaseRevenue), Revenue = Money.FromDecimal(r.Revenue),
            GrowthPercent = r.GrowthPercent, BaseQuantity = r.BaseQuantity, Quantity = r.Quantity,
        }));
        if (rows.Count > pageSize) reply.NextPageToken = PageToken.Encode((offset + pageSize).ToString(CultureInfo.InvariantCulture), filters);
        return reply;
    }

    [Allow(Roles.Marketing)]
    public override async Task<ModelParameters> GetModelParameters(GetModelParametersRequest request, ServerCallContext context) =>
        ToProto(await analytics.LatestModelsAsync(context.CancellationToken));

    [Allow(Roles.Marketing)]
    public override async Task<ModelParameters> FitModels(FitModelsRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var asOf = AsOf(request.AsOf, v);
        v.ThrowIfInvalid();
        var fitted = await analytics.FitAsync(asOf, context.CancellationToken)
            ?? throw new PreconditionFailedException("TOO_FEW_REPEAT_BUYERS", "models",
                "The models need at least two customers with repeat orders as of that date.");
        return ToProto(fitted);
    }

    [Allow(Roles.Admin)]
    public override Task<RebuildStatus> StartRebuild(StartRebuildRequest request, ServerCallContext context) => Task.FromResult(ToProto(rebuilder.Start()));

    [Allow(Roles.Admin)]
    public override Task<RebuildStatus> GetRebuildStatus(GetRebuildStatusRequest request, ServerCallContext context) => Task.FromResult(ToProto(rebuilder.State));

    [Allow(Roles.Admin, Roles.Marketing)]
    public override async Task<V1.RecomputeRun> RecomputeScores(RecomputeScoresRequest request, ServerCallContext context) =>
        await ToProtoAsync(await recompute.StartAsync(request.RefitModels, context.CancellationToken), context.CancellationToken);

    [Allow(Roles.Admin, Roles.Marketing)]
    public override async Task<V1.RecomputeRun> GetRecomputeRun(GetRecomputeRunRequest request, ServerCallContext context)
    {
        var v = new Validator();
        v.Require(request.Id > 0, "id", "is required: a recompute run's id as RecomputeScores returns it.");
        v.ThrowIfInvalid();
        var status = await recompute.GetAsync(request.Id, context.CancellationToken)
            ?? throw new NotFoundException("recompute run", request.Id.ToString(CultureInfo.InvariantCulture));
        return await ToProtoAsync(status, context.CancellationToken);
    }

    private async Task<V1.RecomputeRun> ToProtoAsync(RecomputeStatus status, CancellationToken ct)
    {
        var reply = new V1.RecomputeRun
        {
            Id = status.Id, AsOf = Utc(status.StartedAt), HorizonDays = status.HorizonDays, StartedAt = Utc(status.StartedAt), Error = status.Error ?? "",
            State = status.State switch
            {
                Analytics.RecomputeState.Running => V1.RecomputeState.Running,
                Analytics.RecomputeState.Finished => V1.RecomputeState.Finished,
                _ => V1.RecomputeState.Failed,
            },
        };
        if (status.Run is { } run)
        {
            var models = run.ModelFitId is { } id ? (await analytics.FitByIdAsync(id, ct))?.Models : null;
            reply.AsOf = Utc(run.AsOf);
            reply.Customers = run.Customers;
            reply.FinishedAt = Utc(run.FinishedAt);
            reply.Models = ToProto(models);
            reply.FitSample = run.FitSample ?? 0;
        }
        return reply;
    }

    // ---- helpers ----

    private static Timestamp Utc(DateTime t) => Timestamp.FromDateTime(DateTime.SpecifyKind(t, DateTimeKind.Utc));

    /// <summary>The latest stored run when the request asks "as of now" over everyone at the run's horizon; else null (computed on request).</summary>
    private async Task<Analytics.RecomputeRun?> StoredRunAsync(Timestamp? asOf, string tag, int horizonDays, CancellationToken ct)
    {
        if (asOf is not null || Tag(tag) is not null) return null;
        var run = await stored.LatestRunAsync(ct);
        return run is not null && (horizonDays == 0 || horizonDays == run.HorizonDays) ? run : null;
    }

    private async Task<Analytics.FittedModels?> ModelsOfAsync(Analytics.RecomputeRun run, CancellationToken ct) =>
        run.ModelFitId is { } id ? (await analytics.FitByIdAsync(id, ct))?.Models : null;

    private static StoredScores.Column ColumnOf(DistributionKind kind) => kind switch
    {
        DistributionKind.RfmCells => StoredScores.Column.RfmCell,
        DistributionKind.RfmGroups => StoredScores.Column.RfmGroup,
        DistributionKind.Quadrants => StoredScores.Column.Quadrant,
        DistributionKind.CustomerDeciles => StoredScores.Column.Decile,
        DistributionKind.Ladder => StoredScores.Column.Ladder,
        _ => StoredScores.Column.Churn,
    };

    private DateTime AsOf(Timestamp? asOf, Validator v)
    {
        if (asOf is null) return analytics.Now;
        var value = asOf.ToDateTime();
        v.Require(value.Year >= 2000 && value <= analytics.Now.AddYears(10), "as_of", "must be between 2000 and ten years from now.");
        return value;
    }

    private int Horizon(int days, Validator v)
    {
        v.Require(days is >= 0 and <= 3650, "horizon_days", "must be between 1 and 3650 (0 means the default).");
        return days == 0 ? analytics.Options.DefaultHorizonDays : Math.Clamp(days, 1, 3650);
    }

    private static string? Tag(string value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();

    private static int Offset(string token, string filters, Validator v)
    {
        if (PageToken.Decode(token, filters, v) is not { } key) return 0;
        if (int.TryParse(key, NumberStyles.None, CultureInfo.InvariantCulture, out var offset) && offset is >= 0 and <= 1_000_000) return offset;
        v.Add("page_token", "is not a page token returned by this service.");
        return 0;
    }

    /// <summary>An inclusive brand-time date range → [start, end) as UTC instants.</summary>
    private (DateTime From, DateTime To) Range(Google.Type.Date? from, Google.Type.Date? to, string fromField, string toField, Validator v)
    {
        var start = Date(from, fromField, v);
        var end = Date(to, toField, v);
        if (start is null || end is null) return (default, default);
        if (end < start) { v.Add(toField, $"must not be before {fromField}."); return (default, default); }
        if (end.Value.DayNumber - start.Value.DayNumber >= MaxRangeDays) { v.Add(toField, $"must be within {MaxRangeDays} days of {fromField}."); return (default, default); }
        var engine = analytics.Engine;
        return (engine.ToUtc(start.Value.ToDateTime(TimeOnly.MinValue)), engine.ToUtc(end.Value.AddDays(1).ToDateTime(TimeOnly.MinValue)));
    }

    private static DateOnly? Date(Google.Type.Date? date, string field, Validator v)
    {
        if (date is { Year: >= 1900 and <= 9998, Month: >= 1 and <= 12, Day: >= 1 } d && d.Day <= DateTime.DaysInMonth(d.Year, d.Month))
            return new DateOnly(d.Year, d.Month, d.Day);
        v.Add(field, "is required: a full calendar date (year 1900-9998).");
        return null;
    }

    private static List<Bucket> Group(IEnumerable<CustomerScore> scores, Func<CustomerScore, string> key) =>
        scores.GroupBy(key).Select(g => new Bucket(g.Key, g.Count(), g.Sum(s => s.Facts.SpendCurrent))).ToList();

    /// <summary>Buckets in the configured order (every configured key present, empty ones with zero), then any others.</summary>
    private static List<Bucket> Ordered(List<Bucket> buckets, IEnumerable<string> order)
    {
        var keys = order.Distinct().ToList();
        return keys.Select(k => buckets.FirstOrDefault(b => b.Key == k) ?? new Bucket(k, 0, 0))
            .Concat(buckets.Where(b => !keys.Contains(b.Key))).ToList();
    }

    private static string QuadrantKey(QuadrantKind q) => q.ToString().ToLowerInvariant();

    private static SalesPeriod ToProto(PeriodSales p, string label, DateTime? start) => new()
    {
        Label = label, Start = start is { } s ? new Google.Type.Date { Year = s.Year, Month = s.Month, Day = s.Day } : null,
        Total = Money.FromDecimal(p.Total), OrderCount = p.Orders, AverageTicket = Money.FromDecimal(p.AverageTicket),
        MaxTicket = Money.FromDecimal(p.MaxTicket), MinTicket = Money.FromDecimal(p.MinTicket), CustomerCount = p.Customers,
        PurchaseFrequency = p.Frequency,
    };

    private static ModelParameters ToProto(FittedModels? m) => m is null
        ? new ModelParameters { Fitted = false }
        : new ModelParameters
        {
            Fitted = true, AsOf = Timestamp.FromDateTime(DateTime.SpecifyKind(m.AsOf, DateTimeKind.Utc)),
            FittedAt = Timestamp.FromDateTime(DateTime.SpecifyKind(m.FittedAt, DateTimeKind.Utc)),
            R = m.BgNbd.R, AlphaDays = m.BgNbd.Alpha, A = m.BgNbd.A, B = m.BgNbd.B, BgnbdLogLikelihood = m.BgNbdLogLikelihood,
            BgnbdCustomers = m.BgNbdCustomers, P = m.GammaGamma.P, Q = m.GammaGamma.Q, Gamma = m.GammaGamma.Gamma,
            GammaGammaLogLikelihood = m.GammaGammaLogLikelihood, GammaGammaCustomers = m.GammaGammaCustomers,
        };

    private static RebuildStatus ToProto(ReadModel.RebuildState s) => new()
    {
        State = s.Phase switch
        {
            RebuildPhase.NeverRun => V1.RebuildState.NeverRun,
            RebuildPhase.Running => V1.RebuildState.Running,
            RebuildPhase.Succeeded => V1.RebuildState.Succeeded,
            _ => V1.RebuildState.Failed,
        },
        StartedAt = s.StartedAt is { } a ? Timestamp.FromDateTime(DateTime.SpecifyKind(a, DateTimeKind.Utc)) : null,
        FinishedAt = s.FinishedAt is { } b ? Timestamp.FromDateTime(DateTime.SpecifyKind(b, DateTimeKind.Utc)) : null,
        Customers = s.Customers, Orders = s.Orders, Error = s.Error ?? "", Run = s.Run,
    };
}
