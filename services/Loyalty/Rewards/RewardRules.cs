using System.Text.RegularExpressions;
using Crm.Common.V1;
using Crm.Loyalty.Accounts;
using Crm.Loyalty.V1;
using Crm.ServiceDefaults.Errors;

namespace Crm.Loyalty.Rewards;

/// <summary>Validation of UpsertReward: every bad field reported at once, nothing written.</summary>
public static partial class RewardRules
{
    public const decimal MaxAmount = 999_999_999_999.99m;
    public const int MaxPrizes = 50;
    /// <summary>MaxAmount / 100: the cash due for a redemption of the largest quantity (100) still fits.</summary>
    public const decimal MaxCashPrice = 9_999_999_999.99m;
    /// <summary>Chances are doubles: 0.1 ten times adds up to a hair over or under 1.</summary>
    public const double ProbabilityTolerance = 1e-9;

    [GeneratedRegex("^[a-z0-9_-]{1,64}$")]
    private static partial Regex IdPattern();

    public static bool IsValidId(string id) => IdPattern().IsMatch(id);

    public static RewardRecord Validate(Reward? r, TierTable tiers)
    {
        var v = new Validator();
        if (r is null)
        {
            v.Add("reward", "is required.");
            v.ThrowIfInvalid();
        }
        var id = r!.Id.Trim();
        v.Require(IsValidId(id), "reward.id", "is required: 1-64 characters of a-z, 0-9, '-' and '_'.");
        var name = r.Name.Trim();
        v.Require(name.Length is > 0 and <= 200, "reward.name", "is required, at most 200 characters.");
        var kindKnown = r.Kind != RewardKind.Unspecified && Enum.IsDefined(r.Kind);
        v.Require(kindKnown, "reward.kind", "must be a known reward kind (coupon, goods, points + cash, lottery).");
        var lottery = r.Kind == RewardKind.Lottery;

        v.Require(r.FreeDrawsPerDay is >= 0 and <= 100, "reward.free_draws_per_day", "must be between 0 and 100.");
        v.Require(lottery || r.FreeDrawsPerDay == 0, "reward.free_draws_per_day", "only lotteries have free draws.");
        if (r.PointsCost < 0 || r.PointsCost > 10_000_000)
            v.Add("reward.points_cost", $"must be between 0 and 10,000,000; got {r.PointsCost}.");
        else if (r.PointsCost == 0 && !(lottery && r.FreeDrawsPerDay > 0))
            v.Add("reward.points_cost", "must be greater than zero (only a lottery with free draws may cost nothing).");

        decimal cash = 0;
        if (r.Kind == RewardKind.PointsAndCash)
        {
            cash = Amount(r.CashPrice, "reward.cash_price", v, required: true, allowZero: false) ?? 0;
            // A redemption of up to 100 at once must still fit the amounts the database stores (numeric(14,2)).
            if (cash is > MaxCashPrice and <= MaxAmount) v.Add("reward.cash_price", $"must be at most {MaxCashPrice}.");
        }
        else if (r.CashPrice is not null && !string.IsNullOrWhiteSpace(r.CashPrice.Amount)
                 && !(r.CashPrice.TryToDecimal(out var c) && c == 0))
            v.Add("reward.cash_price", "only points + cash rewards have a cash price.");

        var minTier = r.MinTier.Trim();
        v.Require(minTier.Length == 0 || tiers.Find(minTier) is not null, "reward.min_tier",
            $"must be empty or a tier code ({string.Join(", ", tiers.Tiers.Select(t => t.Code))}); got '{Echo.Cut(minTier)}'.");
        v.Require(r.PerMemberLimit >= 0, "reward.per_member_limit", "must not be negative (0 means no limit).");
        v.Require(r.Stock >= -1, "reward.stock", "must be -1 (unlimited) or a count of 0 or more.");

        CouponTerms? coupon = null;
        if (r.Kind == RewardKind.Coupon)
        {
            if (r.Coupon is null) v.Add("reward.coupon", "is required for a coupon reward: face value, threshold and valid days.");
            else coupon = Terms(r.Coupon, "reward.coupon", v);
        }
        else if (r.Coupon is not null && kindKnown)
            v.Add("reward.coupon", "only coupon rewards have coupon terms (a lottery's coupons are on its prizes).");

        var prizes = new List<PrizeRecord>();
        if (lottery)
        {
            v.Require(r.Prizes.Count is > 0 and <= MaxPrizes, "reward.prizes", $"a lottery needs 1-{MaxPrizes} prizes.");
            prizes = Prizes(r.Prizes, v);
        }
        else if (r.Prizes.Count > 0 && kindKnown)
            v.Add("reward.prizes", "only lotteries have prizes.");

        v.ThrowIfInvalid();
        return new RewardRecord(id, name, r.Kind, r.PointsCost, cash, minTier, r.PerMemberLimit, r.Stock, r.Active, coupon,
            r.FreeDrawsPerDay, prizes);
    }

    private static List<PrizeRecord> Prizes(IReadOnlyList<Prize> list, Validator v)
    {
        var prizes = new List<PrizeRecord>(list.Count);
        var seen = new HashSet<string>();
        double total = 0;
        for (var i = 0; i < list.Count; i++)
        {
            var p = list[i];
            var at = $"reward.prizes[{i}]";
            var id = p.Id.Trim();
            if (!IsValidId(id)) v.Add(at + ".id", "is required: 1-64 characters of a-z, 0-9, '-' and '_'.");
            else if (!seen.Add(id)) v.Add(at + ".id", $"'{id}' is used by another prize of this lottery.");
            var name = p.Name.Trim();
            v.Require(name.Length is > 0 and <= 200, at + ".name", "is required, at most 200 characters.");
            v.Require(p.Kind != PrizeKind.Unspecified && Enum.IsDefined(p.Kind), at + ".kind", "must be a known prize kind (nothing, points, coupon, goods).");
            if (!double.IsFinite(p.Probability) || p.Probability < 0 || p.Probability > 1)
                v.Add(at + ".probability", $"must be between 0 and 1; got {p.Probability}.");
            else total += p.Probability;
            v.Require(p.Stock >= -1, at + ".stock", "must be -1 (unlimited) or a count of 0 or more.");
            if (p.Kind == PrizeKind.Points)
                v.Require(p.Points is > 0 and <= 10_000_000, at + ".points", "a points prize needs 1-10,000,000 points.");
            else
                v.Require(p.Points == 0, at + ".points", "only points prizes give points.");
            CouponTerms? coupon = null;
            if (p.Kind == PrizeKind.Coupon)
            {
                if (p.Coupon is null) v.Add(at + ".coupon", "is required for a coupon prize.");
                else coupon = Terms(p.Coupon, at + ".coupon", v);
            }
            else if (p.Coupon is not null)
                v.Add(at + ".coupon", "only coupon prizes have coupon terms.");
            prizes.Add(new PrizeRecord(id, name, p.Kind, p.Probability, p.Stock, p.Points, coupon));
        }
        v.Require(total <= 1 + ProbabilityTolerance, "reward.prizes", $"the chances add up to {total}; they must add up to at most 1.");
        return prizes;
    }

    private static CouponTerms? Terms(Crm.Loyalty.V1.CouponTerms t, string at, Validator v)
    {
        var face = Amount(t.FaceValue, at + ".face_value", v, required: true, allowZero: false);
        var threshold = Amount(t.Threshold, at + ".threshold", v, required: false, allowZero: true);
        v.Require(t.ValidDays is >= 1 and <= 3650, at + ".valid_days", $"must be between 1 and 3650 days; got {t.ValidDays}.");
        return face is null ? null : new CouponTerms(face.Value, threshold ?? 0, t.ValidDays);
    }

    /// <summary>An amount in yuan; an absent optional amount is null.</summary>
    public static decimal? Amount(Money? money, string field, Validator v, bool required, bool allowZero)
    {
        if (money is null || string.IsNullOrWhiteSpace(money.Amount))
        {
            if (required) v.Add(field, "is required, in yuan with at most two decimals, e.g. \"50.00\".");
            return null;
        }
        if (!money.TryToDecimal(out var value))
        {
            v.Add(field, $"'{Echo.Cut(money.Amount)}' is not an amount in yuan with at most two decimals.");
            return null;
        }
        if (value < 0 || (!allowZero && value == 0))
            v.Add(field, allowZero ? "must not be negative." : $"must be greater than zero; got {money.Amount}.");
        else if (value > MaxAmount)
            v.Add(field, $"must be at most {MaxAmount}.");
        return value;
    }
}
