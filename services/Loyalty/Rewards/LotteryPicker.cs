using Crm.Loyalty.V1;

namespace Crm.Loyalty.Rewards;

/// <summary>
/// Which prize a uniform number in [0, 1) wins. The prizes' chances are laid out on [0, 1) in table order: with
/// chances 0.1 and 0.3, [0, 0.1) wins the first, [0.1, 0.4) the second and [0.4, 1) nothing. A prize out of stock
/// keeps its slice but gives nothing, so running out never raises anyone else's chances.
/// </summary>
public static class LotteryPicker
{
    /// <returns>The prize won, or null for nothing.</returns>
    public static PrizeRecord? Pick(double u, IReadOnlyList<PrizeRecord> prizes)
    {
        if (!(u is >= 0 and < 1)) throw new ArgumentOutOfRangeException(nameof(u), u, "Must be in [0, 1).");
        var from = 0.0;
        PrizeRecord? last = null;
        foreach (var prize in prizes)
        {
            if (prize.Probability <= 0) continue;
            var to = from + prize.Probability;
            if (u < to) return Available(prize);
            from = to;
            last = prize;
        }
        // Chances meant to fill [0, 1) can add up to a hair under 1 in doubles (0.1 ten times): the gap is the last prize's.
        return last is not null && from >= 1 - RewardRules.ProbabilityTolerance ? Available(last) : null;
    }

    private static PrizeRecord? Available(PrizeRecord prize) => prize.Stock == 0 ? null : prize;

    /// <summary>What a draw that wins nothing shows.</summary>
    public static PrizeRecord Nothing { get; } = new("", "Better luck next time", PrizeKind.Nothing, 0, -1, 0, null);
}
