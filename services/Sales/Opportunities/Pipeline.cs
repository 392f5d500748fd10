using Microsoft.Extensions.Options;

namespace Crm.Sales.Opportunities;

public sealed record Stage(string Code, int Probability, int Order)
{
    public bool IsWon => Code == Pipeline.Won;
    public bool IsLost => Code == Pipeline.Lost;
    public bool IsClosed => IsWon || IsLost;
}

/// <summary>The configured stages (Sales:Stages), their order and win probabilities.</summary>
public sealed class Pipeline
{
    public const string Won = "won";
    public const string Lost = "lost";

    public Pipeline(IOptions<SalesOptions> options) : this(options.Value.Stages.Count > 0 ? options.Value.Stages : SalesOptions.DefaultStages) { }

    public Pipeline(IEnumerable<StageOptions> stages)
    {
        Stages = stages.Select((s, i) => new Stage(s.Code.Trim().ToLowerInvariant(), s.Probability, i)).ToList();
        if (Stages.Select(s => s.Code).Distinct().Count() != Stages.Count) throw new InvalidOperationException("Sales:Stages has a stage twice.");
        if (Stages.Any(s => s.Code.Length == 0 || s.Probability is < 0 or > 100))
            throw new InvalidOperationException("Sales:Stages: every stage needs a code and a probability of 0-100.");
        if (Find(Won) is null || Find(Lost) is null) throw new InvalidOperationException("Sales:Stages must include 'won' and 'lost'.");
        if (!Open.Any()) throw new InvalidOperationException("Sales:Stages needs at least one open stage.");
        Ladder = [.. Open, Get(Won)];
    }

    public IReadOnlyList<Stage> Stages { get; }
    public IEnumerable<Stage> Open => Stages.Where(s => !s.IsClosed);
    public Stage First => Open.First();
    public Stage? Find(string code) => Stages.FirstOrDefault(s => s.Code == code);
    public Stage Get(string code) => Find(code) ?? throw new InvalidOperationException($"Stage '{code}' is not configured.");
    public string Codes => string.Join(", ", Stages.Select(s => s.Code));

    /// <summary>The open stages in order, then won: how far an opportunity got (lost is no progress).</summary>
    public IReadOnlyList<Stage> Ladder { get; }

    /// <summary>Position on the <see cref="Ladder"/>; -1 for lost or a stage no longer configured.</summary>
    public int Progress(string? code)
    {
        for (var i = 0; i < Ladder.Count; i++)
            if (Ladder[i].Code == code) return i;
        return -1;
    }

    /// <summary>The furthest stage after a move to <paramref name="target"/> from an opportunity that had reached <paramref name="furthest"/>.</summary>
    public string? Furthest(string? furthest, Stage target) => Progress(target.Code) > Progress(furthest) ? target.Code : furthest;

    /// <summary>Amount × probability, to the fen (half away from zero).</summary>
    public static decimal Weighted(decimal amount, int probability) => Math.Round(amount * probability / 100m, 2, MidpointRounding.AwayFromZero);
}
