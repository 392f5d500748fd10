using Microsoft.Extensions.Options;

namespace Crm.Loyalty.Accounts;

/// <summary>The tier ladder: which tier a growth value reaches, and what the next one needs.</summary>
public sealed class TierTable
{
    public IReadOnlyList<TierOptions> Tiers { get; }

    public TierTable(IOptions<LoyaltyOptions> options) : this(options.Value.Tiers.Count > 0 ? options.Value.Tiers : LoyaltyOptions.DefaultTiers) { }

    public TierTable(IReadOnlyList<TierOptions> tiers)
    {
        Tiers = tiers.OrderBy(t => t.MinGrowthValue).ToList();
        if (Tiers.Count == 0 || Tiers[0].MinGrowthValue != 0)
            throw new InvalidOperationException("Loyalty:Tiers must start with a tier at growth value 0.");
        if (Tiers.Select(t => t.Code).Distinct().Count() != Tiers.Count)
            throw new InvalidOperationException("Loyalty:Tiers codes must be unique.");
    }

    public TierOptions For(long growthValue) => Tiers.Last(t => t.MinGrowthValue <= Math.Max(0, growthValue));

    public TierOptions? Next(long growthValue) => Tiers.FirstOrDefault(t => t.MinGrowthValue > growthValue);

    public TierOptions? Find(string code) => Tiers.FirstOrDefault(t => t.Code == code);

    /// <summary>Position on the ladder (0 = lowest); unknown codes rank lowest.</summary>
    public int Rank(string code) => Math.Max(0, Tiers.ToList().FindIndex(t => t.Code == code));
}
