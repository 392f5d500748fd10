using Crm.Common.V1;
using Crm.Loyalty;
using Crm.Loyalty.Accounts;
using Crm.Loyalty.Rewards;
using Crm.Loyalty.V1;
using Crm.ServiceDefaults.Errors;
using Proto = Crm.Loyalty.V1;

namespace Crm.UnitTests.Loyalty;

public class RewardRulesTests
{
    private readonly TierTable _tiers = new(LoyaltyOptions.DefaultTiers);

    private static Reward SmallCoupon() => new()
    {
        Id = "coupon-20", Name = "¥20 coupon", Kind = RewardKind.Coupon, PointsCost = 200, Stock = -1, Active = true,
        Coupon = new Proto.CouponTerms { FaceValue = new Money { Amount = "20.00" }, ValidDays = 30 },
    };

    private static Reward Lottery() => new()
    {
        Id = "spring_draw", Name = "Spring draw", Kind = RewardKind.Lottery, PointsCost = 0, FreeDrawsPerDay = 1, Stock = -1, Active = true,
        Prizes =
        {
            new Prize { Id = "p30", Name = "30 points", Kind = PrizeKind.Points, Probability = 0.6, Stock = 10, Points = 30 },
            new Prize { Id = "c50", Name = "¥50 coupon", Kind = PrizeKind.Coupon, Probability = 0.4, Stock = -1,
                Coupon = new Proto.CouponTerms { FaceValue = new Money { Amount = "50.00" }, Threshold = new Money { Amount = "500.00" }, ValidDays = 7 } },
        },
    };

    private IReadOnlyList<string> Violations(Reward r)
    {
        var ex = Assert.Throws<ValidationException>(() => RewardRules.Validate(r, _tiers));
        return ex.Violations.Select(v => v.Field).Distinct().Order().ToList();
    }

    [Fact]
    public void A_small_coupon_without_threshold_is_valid()
    {
        var reward = RewardRules.Validate(SmallCoupon(), _tiers);
        Assert.Equal(new Crm.Loyalty.Rewards.CouponTerms(20.00m, 0m, 30), reward.Coupon);
        Assert.Equal(200, reward.PointsCost);
    }

    [Fact]
    public void A_lottery_with_free_draws_may_cost_nothing()
    {
        var reward = RewardRules.Validate(Lottery(), _tiers);
        Assert.Equal(["p30", "c50"], reward.Prizes.Select(p => p.Id));
        Assert.Equal(500.00m, reward.Prizes[1].Coupon!.Threshold);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-10)]
    public void Zero_or_negative_points_cost_is_rejected(long cost)
    {
        var r = SmallCoupon();
        r.PointsCost = cost;
        Assert.Equal(["reward.points_cost"], Violations(r));
    }

    [Fact]
    public void Every_bad_field_is_reported_at_once()
    {
        var r = SmallCoupon();
        r.Id = "Coupon 20!";
        r.Name = " ";
        r.MinTier = "S9";
        r.Stock = -2;
        r.Coupon = new Proto.CouponTerms { FaceValue = new Money { Amount = "0" }, Threshold = new Money { Amount = "-1" }, ValidDays = 0 };
        Assert.Equal(["reward.coupon.face_value", "reward.coupon.threshold", "reward.coupon.valid_days", "reward.id", "reward.min_tier",
            "reward.name", "reward.stock"], Violations(r));
    }

    [Fact]
    public void A_coupon_reward_needs_its_terms_and_a_known_kind_is_required()
    {
        var r = SmallCoupon();
        r.Coupon = null;
        Assert.Equal(["reward.coupon"], Violations(r));
        r = SmallCoupon();
        r.Kind = RewardKind.Unspecified;
        Assert.Contains("reward.kind", Violations(r));
    }

    [Fact]
    public void Points_and_cash_needs_a_cash_price()
    {
        var r = new Reward { Id = "ring-box", Name = "Ring box", Kind = RewardKind.PointsAndCash, PointsCost = 500, Stock = 5, Active = true };
        Assert.Equal(["reward.cash_price"], Violations(r));
        r.CashPrice = new Money { Amount = "99.90" };
        Assert.Equal(99.90m, RewardRules.Validate(r, _tiers).CashPrice);
    }

    [Fact]
    public void Prize_chances_must_be_within_0_and_1_add_up_to_at_most_1_and_prize_ids_be_unique()
    {
        var r = Lottery();
        r.Prizes[0].Probability = 0.7; // 0.7 + 0.4 = 1.1
        Assert.Equal(["reward.prizes"], Violations(r));

        r = Lottery();
        r.Prizes[1].Id = "p30";
        r.Prizes[0].Probability = 1.5;
        Assert.Equal(["reward.prizes[0].probability", "reward.prizes[1].id"], Violations(r));

        r = Lottery();
        r.Prizes[0].Probability = double.NaN;
        Assert.Equal(["reward.prizes[0].probability"], Violations(r));
    }

    [Fact]
    public void A_lottery_without_free_draws_must_cost_points()
    {
        var r = Lottery();
        r.FreeDrawsPerDay = 0;
        Assert.Equal(["reward.points_cost"], Violations(r));
    }
}

public class RewardEligibilityTests
{
    private readonly TierTable _tiers = new(LoyaltyOptions.DefaultTiers);

    private static RewardRecord Reward(bool active = true, string minTier = "", int limit = 0) =>
        new("gift", "Gift", RewardKind.Goods, 100, 0, minTier, limit, -1, active, null, 0, []);

    private static AccountRecord Member(string tier) => new(Guid.NewGuid(), 1_000, 0, tier, 0, null, DateTime.UtcNow);

    private static string Type(Action act) => Assert.Throws<PreconditionFailedException>(act).Type;

    [Fact]
    public void An_inactive_reward_cannot_be_taken() =>
        Assert.Equal("REWARD_INACTIVE", Type(() => RewardEligibility.Ensure(Reward(active: false), Member("S6"), _tiers, 0, 1)));

    [Fact]
    public void A_member_below_the_minimum_tier_cannot_take_it()
    {
        Assert.Equal("TIER_TOO_LOW", Type(() => RewardEligibility.Ensure(Reward(minTier: "S2"), Member("S1"), _tiers, 0, 1)));
        RewardEligibility.Ensure(Reward(minTier: "S2"), Member("S2"), _tiers, 0, 1);
        RewardEligibility.Ensure(Reward(minTier: "S2"), Member("S5"), _tiers, 0, 1);
    }

    [Fact]
    public void The_per_member_limit_counts_units_already_taken()
    {
        RewardEligibility.Ensure(Reward(limit: 3), Member("S1"), _tiers, 1, 2);
        Assert.Equal("LIMIT_REACHED", Type(() => RewardEligibility.Ensure(Reward(limit: 3), Member("S1"), _tiers, 2, 2)));
        Assert.Equal("LIMIT_REACHED", Type(() => RewardEligibility.Ensure(Reward(limit: 3), Member("S1"), _tiers, 3, 1)));
    }
}

public class CouponRulesTests
{
    private static readonly DateTime Now = new(2026, 5, 1, 12, 0, 0, DateTimeKind.Utc);
    private static readonly Guid Owner = Guid.NewGuid();

    private static CouponRecord Large(CouponStatus status = CouponStatus.Issued) =>
        new("ABCDEFGHJKLM", Owner, "coupon-100", 100.00m, 500.00m, Now.AddDays(-1), Now.AddDays(29), status,
            status == CouponStatus.Used ? Now : null, status == CouponStatus.Used ? "POS-1" : null);

    [Fact]
    public void Orders_below_the_threshold_do_not_qualify_orders_at_it_do() =>
        Assert.Equal(("THRESHOLD_NOT_MET", true),
            (Coupons.Problem(Large(), 499.99m, null)?.Type, Coupons.Problem(Large(), 500.00m, Owner) is null));

    [Fact]
    public void Someone_else_s_used_or_expired_coupons_are_refused_in_that_order()
    {
        Assert.Equal("NOT_YOURS", Coupons.Problem(Large(CouponStatus.Used), 600m, Guid.NewGuid())?.Type);
        Assert.Equal("COUPON_USED", Coupons.Problem(Large(CouponStatus.Used), 100m, null)?.Type);
        Assert.Equal("COUPON_EXPIRED", Coupons.Problem(Large(CouponStatus.Expired), 100m, Owner)?.Type);
    }
}
