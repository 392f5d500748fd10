using Microsoft.Extensions.Options;

namespace Crm.Tickets.Sla;

public sealed record SlaTargets(int FirstResponseMinutes, int ResolutionMinutes);

/// <summary>The SLA targets for a priority and customer tier: a policy naming the tier first, then one for any tier.</summary>
public sealed class SlaPolicies(IOptions<TicketsOptions> options)
{
    private readonly IReadOnlyList<SlaPolicyOptions> _policies =
        options.Value.SlaPolicies is { Count: > 0 } configured ? configured : TicketsOptions.DefaultPolicies;

    public static readonly string[] PriorityNames = ["", "low", "normal", "high", "urgent"];

    /// <summary>
    /// Every set of targets a ticket of this priority can get, for a statement to pick from by the customer's tier: one
    /// per tier that a policy of this priority names, then the targets for any other tier (or none) last.
    /// </summary>
    public (string[] Tiers, SlaTargets[] Targets) Choices(int priority)
    {
        var name = PriorityNames[priority];
        var tiers = _policies.Where(p => p.Priority == name).SelectMany(p => p.Tiers).Distinct().ToArray();
        return (tiers, [.. tiers.Select(tier => For(priority, tier)), For(priority, null)]);
    }

    public SlaTargets For(int priority, string? tier)
    {
        var name = PriorityNames[priority];
        var match = _policies.FirstOrDefault(p => p.Priority == name && tier is not null && p.Tiers.Contains(tier))
                    ?? _policies.FirstOrDefault(p => p.Priority == name && p.Tiers.Count == 0)
                    ?? throw new InvalidOperationException($"No SLA policy for priority {name}.");
        return new SlaTargets(match.FirstResponseMinutes, match.ResolutionMinutes);
    }
}
