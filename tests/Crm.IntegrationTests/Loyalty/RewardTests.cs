using Crm.Common.V1;
using Crm.IntegrationTests.Support;
using Crm.Loyalty.V1;
using Dapper;
using Google.Rpc;
using Grpc.Core;
using CouponTerms = Crm.Loyalty.V1.CouponTerms;

namespace Crm.IntegrationTests.Loyalty;

/// <summary>Rewards, redemptions, lottery draws and coupons on real Postgres and RabbitMQ.</summary>
[Collection(SuiteCollection.Name)]
public class RewardTests(SuiteFixture suite)
{
    private readonly LoyaltyService.LoyaltyServiceClient _loyalty = new(suite.Loyalty.Channel);
    private readonly Shoppers _shoppers = new(new Crm.Customer.V1.CustomerService.CustomerServiceClient(suite.Customer.Channel),
        new LoyaltyService.LoyaltyServiceClient(suite.Loyalty.Channel));

    private static string NewId(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..Math.Min(64, prefix.Length + 13)];

    private static string NewMember() => Guid.NewGuid().ToString();

    /// <summary>A member id with an account opened by an operator (member calls never open one).</summary>
    private async Task<string> OpenedMemberAsync()
    {
        var id = NewMember();
        await _loyalty.OpenAccountAsync(new OpenAccountRequest { CustomerId = id });
        return id;
    }

    private static string Key() => Guid.NewGuid().ToString("N");

    /// <summary>A customer whose points come from a paid order, as purchase points do (the lot names the order).</summary>
    private Task<string> MemberWithPointsAsync(long points) => _shoppers.WithOrderPointsAsync(points);

    private async Task<Reward> UpsertAsync(Reward reward) => await _loyalty.UpsertRewardAsync(new UpsertRewardRequest { Reward = reward });

    private Task<Reward> GoodsAsync(long cost, int stock = -1, string minTier = "", int limit = 0, bool active = true) => UpsertAsync(new Reward
    {
        Id = NewId("goods"), Name = "Polishing cloth", Kind = RewardKind.Goods, PointsCost = cost, Stock = stock, MinTier = minTier,
        PerMemberLimit = limit, Active = active,
    });

    private Task<Reward> CouponRewardAsync(long cost, string face, string threshold, int validDays) => UpsertAsync(new Reward
    {
        Id = NewId("coupon"), Name = $"¥{face} coupon", Kind = RewardKind.Coupon, PointsCost = cost, Stock = -1, Active = true,
        Coupon = new CouponTerms { FaceValue = new Money { Amount = face }, Threshold = new Money { Amount = threshold }, ValidDays = validDays },
    });

    private Task<Redemption> RedeemAsync(string customerId, string rewardId, int quantity = 1, string? key = null) =>
        _loyalty.RedeemAsync(new RedeemRequest { CustomerId = customerId, RewardId = rewardId, Quantity = quantity, IdempotencyKey = key ?? Key() }).ResponseAsync;

    private static async Task<RpcException?> Outcome(Func<Task> call)
    {
        try
        {
            await call();
            return null;
        }
        catch (RpcException ex)
        {
            return ex;
        }
    }

    private static string? Precondition(RpcException? ex) =>
        ex?.GetRpcStatus()?.GetDetail<PreconditionFailure>()?.Violations.SingleOrDefault()?.Type;

    private static async Task<string?> FailsWithPrecondition(Func<Task> call) =>
        Precondition(await Rpc.FailsWith(StatusCode.FailedPrecondition, call));

    private async Task<long> BalanceAsync(string customerId) =>
        (await _loyalty.GetAccountAsync(new GetAccountRequest { CustomerId = customerId })).Balance;

    private async Task AssertConsistentAsync(string customerId)
    {
        var check = await _loyalty.VerifyAccountAsync(new VerifyAccountRequest { CustomerId = customerId });
        Assert.True(check.Consistent, check.ToString());
    }

    [Fact]
    public async Task Hundred_parallel_redemptions_of_10_points_against_100_points_redeem_exactly_ten()
    {
        var customerId = await MemberWithPointsAsync(100);
        var reward = await GoodsAsync(cost: 10);

        var outcomes = await Task.WhenAll(Enumerable.Range(0, 100).Select(_ => Outcome(() => RedeemAsync(customerId, reward.Id))));

        Assert.Equal(10, outcomes.Count(o => o is null));
        Assert.All(outcomes.Where(o => o is not null), o =>
            Assert.Equal((StatusCode.FailedPrecondition, "INSUFFICIENT_POINTS"), (o!.StatusCode, Precondition(o))));
        Assert.Equal(0, await BalanceAsync(customerId));
        await AssertConsistentAsync(customerId);
        await using var db = await suite.LoyaltyDb.OpenConnectionAsync();
        Assert.Equal(0, await db.ExecuteScalarAsync<long>(
            "SELECT min(balance_after) FROM ledger_entries WHERE customer_id = @id", new { id = Guid.Parse(customerId) }));
        Assert.Equal(10, await db.ExecuteScalarAsync<long>(
            "SELECT count(*) FROM redemptions WHERE customer_id = @id", new { id = Guid.Parse(customerId) }));
        Assert.Equal(100, (await _loyalty.GetAccountAsync(new GetAccountRequest { CustomerId = customerId })).GrowthValue); // redeeming never lowers it
    }

    [Fact]
    public async Task Fifty_members_racing_for_a_stock_of_ten_get_exactly_ten()
    {
        var reward = await GoodsAsync(cost: 10, stock: 10);
        var members = await Task.WhenAll(Enumerable.Range(0, 50).Select(_ => MemberWithPointsAsync(100)));

        var outcomes = await Task.WhenAll(members.Select(m => Outcome(() => RedeemAsync(m, reward.Id))));

        Assert.Equal(10, outcomes.Count(o => o is null));
        Assert.All(outcomes.Where(o => o is not null), o =>
            Assert.Equal((StatusCode.FailedPrecondition, "OUT_OF_STOCK"), (o!.StatusCode, Precondition(o))));
        var balances = await Task.WhenAll(members.Select(BalanceAsync));
        Assert.Equal(10 * 90 + 40 * 100, balances.Sum());
        await using var db = await suite.LoyaltyDb.OpenConnectionAsync();
        Assert.Equal(0, await db.ExecuteScalarAsync<int>("SELECT stock FROM rewards WHERE id = @Id", new { reward.Id }));
        Assert.Equal(10, await db.ExecuteScalarAsync<long>("SELECT count(*) FROM redemptions WHERE reward_id = @Id", new { reward.Id }));
        Assert.Equal("OUT_OF_STOCK", await FailsWithPrecondition(() => RedeemAsync(members[0], reward.Id)));
    }

    [Fact]
    public async Task Small_and_large_coupons_are_issued_checked_and_used_once()
    {
        await using var issuedProbe = await EventProbe.StartAsync(suite.Infrastructure.RabbitMq!.AmqpUri, "Crm.Contracts:CouponIssued");
        await using var usedProbe = await EventProbe.StartAsync(suite.Infrastructure.RabbitMq!.AmqpUri, "Crm.Contracts:CouponUsed");
        var customerId = await MemberWithPointsAsync(1_000);
        var outbox = await Markers.PositionAsync(suite.LoyaltyDb);
        var small = await CouponRewardAsync(cost: 50, face: "20.00", threshold: "0", validDays: 30);
        var large = await CouponRewardAsync(cost: 300, face: "100.00", threshold: "500.00", validDays: 30);

        var smallRedemption = await RedeemAsync(customerId, small.Id);
        var smallCoupon = Assert.Single(smallRedemption.Coupons);
        Assert.Matches("^[2-9A-HJ-NP-Z]{12}$", smallCoupon.Code);
        Assert.Equal((CouponStatus.Issued, "20.00", "0.00", 950L), (smallCoupon.Status, smallCoupon.FaceValue.Amount, smallCoupon.Threshold.Amount, smallRedemption.BalanceAfter));
        Assert.Equal(TimeSpan.FromDays(30), smallCoupon.ValidUntil.ToDateTime() - smallCoupon.ValidFrom.ToDateTime());
        var cheap = await _loyalty.ValidateCouponAsync(new ValidateCouponRequest { Code = smallCoupon.Code.ToLowerInvariant(), OrderAmount = new Money { Amount = "12.50" } });
        Assert.Equal((true, "12.50"), (cheap.Valid, cheap.Discount.Amount));

        var code = Assert.Single((await RedeemAsync(customerId, large.Id)).Coupons).Code;
        var below = await _loyalty.ValidateCouponAsync(new ValidateCouponRequest { Code = code, OrderAmount = new Money { Amount = "499.99" }, CustomerId = customerId });
        Assert.False(below.Valid);
        Assert.StartsWith("THRESHOLD_NOT_MET", below.Reason);
        var notYours = await _loyalty.ValidateCouponAsync(new ValidateCouponRequest { Code = code, OrderAmount = new Money { Amount = "800.00" }, CustomerId = NewMember() });
        Assert.StartsWith("NOT_YOURS", notYours.Reason);

        UseCouponRequest Use(string amount, string orderRef) => new() { Code = code, OrderAmount = new Money { Amount = amount }, OrderRef = orderRef };
        Assert.Equal("THRESHOLD_NOT_MET", await FailsWithPrecondition(() => _loyalty.UseCouponAsync(Use("499.99", "POS-1")).ResponseAsync));
        var still = await _loyalty.ValidateCouponAsync(new ValidateCouponRequest { Code = code, OrderAmount = new Money { Amount = "500.00" } });
        Assert.Equal((true, CouponStatus.Issued, "100.00"), (still.Valid, still.Coupon.Status, still.Discount.Amount));

        var used = await _loyalty.UseCouponAsync(Use("500.00", "POS-2"));
        Assert.Equal((CouponStatus.Used, "POS-2"), (used.Status, used.UsedOrderRef));
        Assert.Equal(used, await _loyalty.UseCouponAsync(Use("500.00", "POS-2")));
        Assert.Equal("COUPON_USED", await FailsWithPrecondition(() => _loyalty.UseCouponAsync(Use("900.00", "POS-3")).ResponseAsync));
        var after = await _loyalty.ValidateCouponAsync(new ValidateCouponRequest { Code = code, OrderAmount = new Money { Amount = "900.00" } });
        Assert.StartsWith("COUPON_USED", after.Reason);

        await issuedProbe.WaitUntilAsync(() => issuedProbe.For("customerId", customerId).Count >= 2, TimeSpan.FromSeconds(15), "two CouponIssued");
        await usedProbe.WaitUntilAsync(() => usedProbe.For("code", code).Count >= 1, TimeSpan.FromSeconds(15), "CouponUsed");

        // Markers: once every loyalty outbox row so far is confirmed, one more coupon is issued and used; a duplicate of
        // the events above would be on each probe's queue before the marker's (see Markers).
        await Markers.DrainAsync(suite.LoyaltyDb, outbox);
        var markerCode = Assert.Single((await RedeemAsync(customerId, small.Id)).Coupons).Code;
        await _loyalty.UseCouponAsync(new UseCouponRequest { Code = markerCode, OrderAmount = new Money { Amount = "30.00" }, OrderRef = "POS-M" });
        await issuedProbe.WaitUntilAsync(() => issuedProbe.For("code", markerCode).Count >= 1, TimeSpan.FromSeconds(15), "the marker CouponIssued");
        await usedProbe.WaitUntilAsync(() => usedProbe.For("code", markerCode).Count >= 1, TimeSpan.FromSeconds(15), "the marker CouponUsed");
        var issued = issuedProbe.For("customerId", customerId).Select(e => e.Message.GetProperty("code").GetString()!).ToList();
        Assert.Equal(3, issued.Count);
        Assert.Equal(new[] { smallCoupon.Code, code }.Order(StringComparer.Ordinal), issued.Take(2).Order(StringComparer.Ordinal));
        Assert.Equal(markerCode, issued[2]);
        Assert.Equal([code, markerCode], usedProbe.For("customerId", customerId).Select(e => e.Message.GetProperty("code").GetString()));
        var usedEvent = Assert.Single(usedProbe.For("code", code));
        Assert.Equal(("POS-2", 100.00m), (usedEvent.Message.GetProperty("orderRef").GetString(), EventProbe.Decimal(usedEvent.Message, "faceValue")));
        await Rpc.FailsWith(StatusCode.NotFound, () => _loyalty.ValidateCouponAsync(new ValidateCouponRequest { Code = "ZZZZZZZZZZZZ", OrderAmount = new Money { Amount = "1.00" } }).ResponseAsync);
    }

    [Fact]
    public async Task Tills_racing_to_use_one_coupon_use_it_once()
    {
        var customerId = await MemberWithPointsAsync(100);
        var reward = await CouponRewardAsync(cost: 50, face: "20.00", threshold: "0", validDays: 30);
        var code = Assert.Single((await RedeemAsync(customerId, reward.Id)).Coupons).Code;

        var outcomes = await Task.WhenAll(Enumerable.Range(0, 20).Select(i => Outcome(() => _loyalty.UseCouponAsync(new UseCouponRequest
        {
            Code = code, OrderAmount = new Money { Amount = "88.00" }, OrderRef = $"POS-{i}", CustomerId = customerId,
        }).ResponseAsync)));

        Assert.Equal(1, outcomes.Count(o => o is null));
        Assert.All(outcomes.Where(o => o is not null), o => Assert.Equal("COUPON_USED", Precondition(o)));
    }

    [Fact]
    public async Task An_expired_coupon_is_refused()
    {
        var customerId = await MemberWithPointsAsync(100);
        var reward = await CouponRewardAsync(cost: 10, face: "5.00", threshold: "0", validDays: 1);
        var code = Assert.Single((await RedeemAsync(customerId, reward.Id)).Coupons).Code;
        await using (var db = await suite.LoyaltyDb.OpenConnectionAsync())
            await db.ExecuteAsync("UPDATE coupons SET valid_until = now() - interval '1 minute' WHERE code = @code", new { code });

        var check = await _loyalty.ValidateCouponAsync(new ValidateCouponRequest { Code = code, OrderAmount = new Money { Amount = "50.00" } });
        Assert.Equal((false, CouponStatus.Expired), (check.Valid, check.Coupon.Status));
        Assert.StartsWith("COUPON_EXPIRED", check.Reason);
        Assert.Equal("COUPON_EXPIRED", await FailsWithPrecondition(() => _loyalty.UseCouponAsync(new UseCouponRequest
        {
            Code = code, OrderAmount = new Money { Amount = "50.00" }, OrderRef = "POS-X",
        }).ResponseAsync));
    }

    [Fact]
    public async Task A_retried_redemption_returns_the_first_and_spends_once()
    {
        var customerId = await MemberWithPointsAsync(500);
        var reward = await CouponRewardAsync(cost: 50, face: "10.00", threshold: "0", validDays: 7);
        var key = Key();

        var first = await RedeemAsync(customerId, reward.Id, quantity: 3, key: key);
        var retry = await RedeemAsync(customerId, reward.Id, quantity: 3, key: key);

        Assert.Equal(first, retry);
        Assert.Equal((150L, 350L, 3), (first.PointsSpent, first.BalanceAfter, first.Coupons.Select(c => c.Code).Distinct().Count()));
        Assert.Equal(350, await BalanceAsync(customerId));
        var other = await GoodsAsync(cost: 10);
        await Rpc.FailsWith(StatusCode.AlreadyExists, () => RedeemAsync(customerId, other.Id, key: key));
        var someoneElse = await OpenedMemberAsync();
        await Rpc.FailsWith(StatusCode.AlreadyExists, () => RedeemAsync(someoneElse, reward.Id, quantity: 3, key: key));
        await AssertConsistentAsync(customerId);
    }

    [Fact]
    public async Task Points_and_cash_records_the_cash_due()
    {
        var customerId = await MemberWithPointsAsync(5_000);
        var reward = await UpsertAsync(new Reward
        {
            Id = NewId("pc"), Name = "Jewellery box", Kind = RewardKind.PointsAndCash, PointsCost = 800, CashPrice = new Money { Amount = "99.90" },
            Stock = 5, Active = true,
        });
        Assert.Equal("99.90", reward.CashPrice.Amount);

        var redemption = await RedeemAsync(customerId, reward.Id, quantity: 2);

        Assert.Equal((1_600L, "199.80", 3_400L), (redemption.PointsSpent, redemption.CashDue.Amount, redemption.BalanceAfter));
        Assert.Empty(redemption.Coupons);
    }

    [Fact]
    public async Task Tier_activity_and_per_member_limit_gate_redemptions_and_the_member_s_list()
    {
        var customerId = await MemberWithPointsAsync(1_000);
        var silver = await GoodsAsync(cost: 10, minTier: "S2", limit: 1);
        var inactive = await GoodsAsync(cost: 10, active: false);
        var everyone = await GoodsAsync(cost: 10);

        Assert.Equal("TIER_TOO_LOW", await FailsWithPrecondition(() => RedeemAsync(customerId, silver.Id)));
        Assert.Equal("REWARD_INACTIVE", await FailsWithPrecondition(() => RedeemAsync(customerId, inactive.Id)));
        var listed = await ListAllAsync(customerId);
        Assert.Contains(everyone.Id, listed);
        Assert.DoesNotContain(silver.Id, listed);
        Assert.DoesNotContain(inactive.Id, listed);
        var all = await ListAllAsync(null);
        Assert.Contains(silver.Id, all);
        Assert.Contains(inactive.Id, all);

        // Another order of 7,001 yuan: 1,000 + 7,001 = 8,001 growth value reaches S2 (redemptions never lower it).
        await _shoppers.PayAsync(customerId, 7_001m);
        await _shoppers.WaitForAccountAsync(customerId, a => a.GrowthValue == 8_001, "8,001 growth value");

        Assert.Contains(silver.Id, await ListAllAsync(customerId));
        await RedeemAsync(customerId, silver.Id);
        Assert.Equal("LIMIT_REACHED", await FailsWithPrecondition(() => RedeemAsync(customerId, silver.Id)));
        var account = await _loyalty.GetAccountAsync(new GetAccountRequest { CustomerId = customerId });
        Assert.Equal(("S2", 8_001L, 7_991L), (account.Tier.Code, account.GrowthValue, account.Balance));
        await AssertConsistentAsync(customerId);
    }

    private async Task<List<string>> ListAllAsync(string? customerId)
    {
        var ids = new List<string>();
        var request = new ListRewardsRequest { CustomerId = customerId ?? "", PageSize = 7 };
        do
        {
            var page = await _loyalty.ListRewardsAsync(request);
            ids.AddRange(page.Rewards.Select(r => r.Id));
            request.PageToken = page.NextPageToken;
        } while (request.PageToken.Length > 0);
        Assert.Equal(ids.Order(StringComparer.Ordinal), ids);
        Assert.Equal(ids.Count, ids.Distinct().Count());
        return ids;
    }

    [Fact]
    public async Task Bad_input_is_refused_with_field_violations_and_nothing_is_written()
    {
        var zero = await Rpc.FailsWith(StatusCode.InvalidArgument, () => GoodsAsync(cost: 0));
        Assert.Equal(["reward.points_cost"], zero.Fields());
        var negative = await Rpc.FailsWith(StatusCode.InvalidArgument, () => GoodsAsync(cost: -5));
        Assert.Equal(["reward.points_cost"], negative.Fields());

        var customerId = await MemberWithPointsAsync(1_000);
        var missing = await Rpc.FailsWith(StatusCode.NotFound, () => RedeemAsync(customerId, "no-such-reward"));
        Assert.Equal("no-such-reward", missing.Resource()!.ResourceName);

        var reward = await GoodsAsync(cost: 1, stock: 500);
        var before = await CountsAsync(customerId, reward.Id);
        var tooMany = await Rpc.FailsWith(StatusCode.InvalidArgument, () => RedeemAsync(customerId, reward.Id, quantity: 101));
        Assert.Equal(["quantity"], tooMany.Fields());
        var noKey = await Rpc.FailsWith(StatusCode.InvalidArgument, () => _loyalty.RedeemAsync(new RedeemRequest
        {
            CustomerId = "not-a-uuid", RewardId = "", Quantity = -1,
        }).ResponseAsync);
        Assert.Equal(["customer_id", "idempotency_key", "quantity", "reward_id"], noKey.Fields());
        Assert.Equal(before, await CountsAsync(customerId, reward.Id));
        Assert.Equal(1_000, await BalanceAsync(customerId));

        var lottery = await LotteryAsync(freeDraws: 1, cost: 20, new Prize { Id = "none", Name = "Thanks", Kind = PrizeKind.Nothing, Probability = 1, Stock = -1 });
        await Rpc.FailsWith(StatusCode.InvalidArgument, () => RedeemAsync(customerId, lottery.Id));
        await Rpc.FailsWith(StatusCode.InvalidArgument, () => _loyalty.DrawAsync(new DrawRequest { CustomerId = customerId, RewardId = reward.Id, IdempotencyKey = Key() }).ResponseAsync);
        var noAmount = await Rpc.FailsWith(StatusCode.InvalidArgument, () => _loyalty.UseCouponAsync(new UseCouponRequest { Code = "ABC" }).ResponseAsync);
        Assert.Equal(["order_amount", "order_ref"], noAmount.Fields());
    }

    private Task<Reward> AdjustStockAsync(string rewardId, int delta, string? key = null, string prizeId = "") =>
        _loyalty.AdjustRewardStockAsync(new AdjustRewardStockRequest { RewardId = rewardId, PrizeId = prizeId, Delta = delta, IdempotencyKey = key ?? Key() }).ResponseAsync;

    [Fact]
    public async Task Editing_a_reward_keeps_its_remaining_stock_and_stock_changes_only_explicitly()
    {
        var created = await GoodsAsync(cost: 10, stock: 10);
        var customerId = await MemberWithPointsAsync(100);
        await RedeemAsync(customerId, created.Id, quantity: 3);

        // An edit from the copy read before the redemptions (stock 10): name and price change, the 7 left stay 7.
        var edit = created.Clone();
        edit.Name = "Silk polishing cloth";
        edit.PointsCost = 12;
        var edited = await UpsertAsync(edit);
        Assert.Equal(("Silk polishing cloth", 12L, 7), (edited.Name, edited.PointsCost, edited.Stock));
        await using var db = await suite.LoyaltyDb.OpenConnectionAsync();
        Assert.Equal(7, await db.ExecuteScalarAsync<int>("SELECT stock FROM rewards WHERE id = @Id", new { created.Id }));

        // Restock +5 → 12, once per key; the same key for another change is refused.
        var key = Key();
        Assert.Equal(12, (await AdjustStockAsync(created.Id, +5, key)).Stock);
        Assert.Equal(12, (await AdjustStockAsync(created.Id, +5, key)).Stock);
        await Rpc.FailsWith(StatusCode.AlreadyExists, () => AdjustStockAsync(created.Id, +6, key));

        // Never below zero: writing off 13 of 12 is refused and changes nothing; 12 of 12 leaves 0.
        Assert.Equal("STOCK_BELOW_ZERO", await FailsWithPrecondition(() => AdjustStockAsync(created.Id, -13)));
        Assert.Equal(12, await db.ExecuteScalarAsync<int>("SELECT stock FROM rewards WHERE id = @Id", new { created.Id }));
        Assert.Equal(0, (await AdjustStockAsync(created.Id, -12)).Stock);
        Assert.Equal("OUT_OF_STOCK", await FailsWithPrecondition(() => RedeemAsync(customerId, created.Id)));

        var unlimited = await GoodsAsync(cost: 10);
        Assert.Equal("STOCK_UNLIMITED", await FailsWithPrecondition(() => AdjustStockAsync(unlimited.Id, +1)));
        await Rpc.FailsWith(StatusCode.NotFound, () => AdjustStockAsync("no-such-reward", +1));
        var bad = await Rpc.FailsWith(StatusCode.InvalidArgument, () => _loyalty.AdjustRewardStockAsync(
            new AdjustRewardStockRequest { RewardId = created.Id, Delta = 0 }).ResponseAsync);
        Assert.Equal(["delta", "idempotency_key"], bad.Fields());

        // A lottery prize: a draw takes one of its 2, an edit keeps the 1 left, an explicit change with prize_id adds to it.
        var lottery = await LotteryAsync(freeDraws: 1, cost: 0,
            new Prize { Id = "p5", Name = "5 points", Kind = PrizeKind.Points, Probability = 1.0, Stock = 2, Points = 5 });
        Assert.Equal("p5", (await DrawAsync(customerId, lottery.Id)).Prize.Id);
        var lotteryEdit = lottery.Clone();
        lotteryEdit.Name = "Lucky draw (spring)";
        Assert.Equal(1, Assert.Single((await UpsertAsync(lotteryEdit)).Prizes).Stock);
        Assert.Equal(4, Assert.Single((await AdjustStockAsync(lottery.Id, +3, prizeId: "p5")).Prizes).Stock);
        await Rpc.FailsWith(StatusCode.NotFound, () => AdjustStockAsync(lottery.Id, +1, prizeId: "no-such-prize"));
    }

    private async Task<(long Redemptions, long Ledger, long Stock, long Outbox)> CountsAsync(string customerId, string rewardId)
    {
        await using var db = await suite.LoyaltyDb.OpenConnectionAsync();
        return await db.QuerySingleAsync<(long, long, long, long)>("""
            SELECT (SELECT count(*) FROM redemptions WHERE customer_id = @id),
                   (SELECT count(*) FROM ledger_entries WHERE customer_id = @id),
                   (SELECT stock FROM rewards WHERE id = @rewardId)::bigint,
                   (SELECT count(*) FROM change_events WHERE payload->>'customerId' = @text)
            """, new { id = Guid.Parse(customerId), rewardId, text = customerId });
    }

    private Task<Reward> LotteryAsync(int freeDraws, long cost, params Prize[] prizes)
    {
        var reward = new Reward
        {
            Id = NewId("draw"), Name = "Lucky draw", Kind = RewardKind.Lottery, PointsCost = cost, FreeDrawsPerDay = freeDraws, Stock = -1, Active = true,
        };
        reward.Prizes.AddRange(prizes);
        return UpsertAsync(reward);
    }

    private Task<DrawResult> DrawAsync(string customerId, string rewardId, string? key = null) =>
        _loyalty.DrawAsync(new DrawRequest { CustomerId = customerId, RewardId = rewardId, IdempotencyKey = key ?? Key() }).ResponseAsync;

    [Fact]
    public async Task A_free_draw_wins_the_certain_prize_and_a_paid_draw_after_its_stock_is_gone_gives_nothing()
    {
        var lottery = await LotteryAsync(freeDraws: 1, cost: 20,
            new Prize { Id = "p30", Name = "30 points", Kind = PrizeKind.Points, Probability = 1.0, Stock = 1, Points = 30 });
        var customerId = await MemberWithPointsAsync(100);

        var first = await DrawAsync(customerId, lottery.Id);
        Assert.Equal((true, 0L, PrizeKind.Points, "p30", 30L, 130L), (first.FreeDraw, first.PointsSpent, first.Prize.Kind, first.Prize.Id, first.Prize.Points, first.BalanceAfter));

        var key = Key();
        var second = await DrawAsync(customerId, lottery.Id, key);
        Assert.Equal((false, 20L, PrizeKind.Nothing, 110L), (second.FreeDraw, second.PointsSpent, second.Prize.Kind, second.BalanceAfter));
        Assert.Equal(second, await DrawAsync(customerId, lottery.Id, key));

        var account = await _loyalty.GetAccountAsync(new GetAccountRequest { CustomerId = customerId });
        Assert.Equal((110L, 130L), (account.Balance, account.GrowthValue)); // 100 from the order + the 30-point prize; the paid draw does not lower it
        await AssertConsistentAsync(customerId);
        await using var db = await suite.LoyaltyDb.OpenConnectionAsync();
        Assert.Equal(0, await db.ExecuteScalarAsync<int>("SELECT stock FROM prizes WHERE reward_id = @Id", new { lottery.Id }));
        Assert.Equal(2, await db.ExecuteScalarAsync<long>("SELECT count(*) FROM draws WHERE reward_id = @Id", new { lottery.Id }));

        // A member without points still gets the free draw, then no more.
        var broke = await OpenedMemberAsync();
        Assert.True((await DrawAsync(broke, lottery.Id)).FreeDraw);
        Assert.Equal("INSUFFICIENT_POINTS", await FailsWithPrecondition(() => DrawAsync(broke, lottery.Id)));
    }

    [Fact]
    public async Task A_coupon_prize_issues_a_coupon_and_free_only_lotteries_stop_after_the_free_draws()
    {
        var lottery = await LotteryAsync(freeDraws: 1, cost: 0, new Prize
        {
            Id = "c50", Name = "¥50 off ¥500", Kind = PrizeKind.Coupon, Probability = 1.0, Stock = -1,
            Coupon = new CouponTerms { FaceValue = new Money { Amount = "50.00" }, Threshold = new Money { Amount = "500.00" }, ValidDays = 7 },
        });
        var customerId = await OpenedMemberAsync();

        var won = await DrawAsync(customerId, lottery.Id);

        Assert.Equal((PrizeKind.Coupon, CouponStatus.Issued, "50.00", "500.00"), (won.Prize.Kind, won.Coupon.Status, won.Coupon.FaceValue.Amount, won.Coupon.Threshold.Amount));
        var check = await _loyalty.ValidateCouponAsync(new ValidateCouponRequest { Code = won.Coupon.Code, OrderAmount = new Money { Amount = "600.00" }, CustomerId = customerId });
        Assert.Equal((true, "50.00"), (check.Valid, check.Discount.Amount));
        Assert.Equal("LIMIT_REACHED", await FailsWithPrecondition(() => DrawAsync(customerId, lottery.Id)));
    }
}
