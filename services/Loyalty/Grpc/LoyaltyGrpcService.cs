using Crm.Loyalty.Accounts;
using Crm.Loyalty.Activities;
using Crm.Loyalty.Expiry;
using Crm.Loyalty.V1;
using Crm.ServiceDefaults.Errors;
using Crm.ServiceDefaults.Paging;
using Crm.ServiceDefaults.Security;
using Grpc.Core;

namespace Crm.Loyalty.Grpc;

/// <summary>crm.loyalty.v1.LoyaltyService: accounts, ledger, activities and expiry. Rewards and coupons: LoyaltyGrpcService.Rewards.cs.</summary>
public sealed partial class LoyaltyGrpcService(
    AccountQueries queries, AccountTransactions accounts, PointsAdjustments adjustments, CheckIns checkIns, ActivityPoints activities,
    PointsExpiry expiry, TierTable tiers, Rewards.RewardCatalog rewards, Rewards.Redemptions redemptions, Rewards.LotteryDraws draws, Rewards.Coupons coupons,
    Rewards.RewardGrants grants) : LoyaltyService.LoyaltyServiceBase
{
    [Allow(Roles.Service)]
    public override async Task<Account> OpenAccount(OpenAccountRequest request, ServerCallContext context)
    {
        var customerId = Ids.Parse(request.CustomerId, "customer_id");
        await accounts.RunAsync(customerId, (_, account) => Task.FromResult(account), context.CancellationToken, openIfMissing: true);
        var account = await queries.GetAsync(customerId, context.CancellationToken)
            ?? throw new NotFoundException("account", customerId.ToString());
        return Wire.ToProto(account, tiers);
    }

    [Allow(Roles.Marketing, Roles.Sales, Roles.Service, Roles.Store, Roles.Member)]
    public override async Task<Account> GetAccount(GetAccountRequest request, ServerCallContext context)
    {
        var customerId = Ids.Parse(request.CustomerId, "customer_id");
        context.RequireSelf(customerId);
        var account = await queries.GetAsync(customerId, context.CancellationToken)
            ?? throw new NotFoundException("account", customerId.ToString());
        return Wire.ToProto(account, tiers);
    }

    [Allow(Roles.Service, Roles.Member)]
    public override async Task<ListLedgerResponse> ListLedger(ListLedgerRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var customerId = Ids.Parse(request.CustomerId, "customer_id", v);
        var pageSize = PageToken.PageSize(request.PageSize, v);
        var before = PageToken.Decode(request.PageToken, customerId.ToString(), v) is { } key && long.TryParse(key, out var id) ? id : long.MaxValue;
        v.ThrowIfInvalid();
        context.RequireSelf(customerId);

        var page = await queries.ListLedgerAsync(customerId, before, pageSize + 1, context.CancellationToken);
        if (page.Count == 0 && before == long.MaxValue && await queries.GetAsync(customerId, context.CancellationToken) is null)
            throw new NotFoundException("account", customerId.ToString());
        var response = new ListLedgerResponse();
        response.Entries.AddRange(page.Take(pageSize).Select(Wire.ToProto));
        if (page.Count > pageSize) response.NextPageToken = PageToken.Encode(page[pageSize - 1].Id.ToString(), customerId.ToString());
        return response;
    }

    [Allow(Roles.Service)]
    public override async Task<VerifyAccountResponse> VerifyAccount(VerifyAccountRequest request, ServerCallContext context)
    {
        var customerId = Ids.Parse(request.CustomerId, "customer_id");
        var check = await queries.VerifyAsync(customerId, context.CancellationToken)
            ?? throw new NotFoundException("account", customerId.ToString());
        return new VerifyAccountResponse
        {
            Balance = check.Balance, LedgerPointsSum = check.LedgerPoints, GrowthValue = check.GrowthValue,
            LedgerGrowthSum = check.LedgerGrowth, OpenLotPoints = check.OpenLotPoints, Consistent = check.Consistent,
        };
    }

    [Allow(Roles.Service)]
    public override async Task<LedgerEntry> AdjustPoints(AdjustPointsRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var customerId = Ids.Parse(request.CustomerId, "customer_id", v);
        v.Require(request.Points != 0, "points", "must not be zero: positive adds points, negative deducts them.");
        // Not Math.Abs: it overflows on long.MinValue.
        v.Require(request.Points is >= -10_000_000 and <= 10_000_000, "points", "must be within ±10,000,000.");
        v.Require(!string.IsNullOrWhiteSpace(request.Reason), "reason", "is required: say why the points are adjusted.");
        v.Require(request.Reason.Length <= 200, "reason", "must be at most 200 characters.");
        v.Require(!string.IsNullOrWhiteSpace(request.IdempotencyKey) && request.IdempotencyKey.Length <= 100, "idempotency_key",
            "is required (at most 100 characters), so a retried adjustment is applied once.");
        v.ThrowIfInvalid();

        var entry = await adjustments.AdjustAsync(customerId, request.Points, request.Reason.Trim(), request.IdempotencyKey.Trim(), context.CancellationToken);
        return Wire.ToProto(entry);
    }

    [Allow(Roles.Member)]
    public override async Task<CheckInResponse> CheckIn(CheckInRequest request, ServerCallContext context)
    {
        var customerId = Ids.Parse(request.CustomerId, "customer_id");
        context.RequireSelf(customerId);
        var result = await checkIns.CheckInAsync(customerId, context.CancellationToken);
        return new CheckInResponse { Entry = Wire.ToProto(result.Entry), Streak = result.Streak, BonusPoints = result.BonusPoints };
    }

    [Allow(Roles.Marketing, Roles.Member)]
    public override async Task<LedgerEntry> RegisterActivity(RegisterActivityRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var customerId = Ids.Parse(request.CustomerId, "customer_id", v);
        v.Require(request.Type != ActivityType.Unspecified && Enum.IsDefined(request.Type), "type", "must be a known activity type.");
        var perActivity = request.Type is ActivityType.Survey or ActivityType.Vote or ActivityType.Game;
        var activityId = request.ActivityId.Trim();
        if (perActivity) v.Require(activityId.Length is > 0 and <= 100, "activity_id", "is required for surveys, votes and games (at most 100 characters).");
        v.ThrowIfInvalid();
        context.RequireSelf(customerId);

        var entry = await activities.RegisterAsync(customerId, request.Type, perActivity ? activityId : null, context.CancellationToken);
        return Wire.ToProto(entry);
    }

    [Allow(Roles.Marketing, Roles.Service, Roles.System)]
    public override async Task<ListExpiringPointsResponse> ListExpiringPoints(ListExpiringPointsRequest request, ServerCallContext context)
    {
        var v = new Validator();
        v.Require(request.WithinDays is >= 1 and <= 366, "within_days", "must be between 1 and 366.");
        var pageSize = PageToken.PageSize(request.PageSize, v);
        var filters = $"within={request.WithinDays}";
        var after = PageToken.Decode(request.PageToken, filters, v) is { } key && Guid.TryParse(key, out var id) ? id : Guid.Empty;
        v.ThrowIfInvalid();

        var page = await expiry.ListExpiringAsync(request.WithinDays, after, pageSize + 1, context.CancellationToken);
        var response = new ListExpiringPointsResponse();
        response.Accounts.AddRange(page.Take(pageSize).Select(r => new ExpiringPoints
        {
            CustomerId = r.CustomerId.ToString(), Points = r.Points,
            ExpiresAt = Google.Protobuf.WellKnownTypes.Timestamp.FromDateTime(DateTime.SpecifyKind(r.ExpiresAt, DateTimeKind.Utc)),
        }));
        if (page.Count > pageSize) response.NextPageToken = PageToken.Encode(page[pageSize - 1].CustomerId.ToString(), filters);
        return response;
    }
}
