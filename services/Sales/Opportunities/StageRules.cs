using Crm.ServiceDefaults.Errors;

namespace Crm.Sales.Opportunities;

/// <summary>What a stage move may do; pure, so the rules are unit-tested with the configured pipeline.</summary>
public static class StageRules
{
    /// <summary>The stage named by a request, or a field violation listing the configured stages.</summary>
    public static Stage? Parse(Pipeline pipeline, string? code, string field, Validator v, bool required = true)
    {
        var text = code?.Trim().ToLowerInvariant() ?? "";
        if (text.Length == 0)
        {
            if (required) v.Add(field, $"is required: one of {pipeline.Codes}.");
            return null;
        }
        var stage = pipeline.Find(text);
        if (stage is null) v.Add(field, $"'{Echo.Cut(code)}' is not a stage of the pipeline ({pipeline.Codes}).");
        return stage;
    }

    /// <summary>Checks a move of an opportunity in <paramref name="current"/> to <paramref name="target"/>.</summary>
    public static void CheckMove(Guid id, Stage current, Stage target)
    {
        if (current.IsClosed)
            throw new PreconditionFailedException("OPPORTUNITY_CLOSED", $"opportunities/{id}",
                $"Opportunity {id} is {current.Code}: reopen it (ReopenOpportunity) before moving it to {target.Code}.");
        if (current.Code == target.Code)
            throw new PreconditionFailedException("SAME_STAGE", $"opportunities/{id}", $"Opportunity {id} is already in {target.Code}.");
    }

    public static void CheckReopen(Guid id, Stage current, Stage target, decimal paid)
    {
        if (!current.IsClosed)
            throw new PreconditionFailedException("OPPORTUNITY_OPEN", $"opportunities/{id}", $"Opportunity {id} is open ({current.Code}); only won or lost ones are reopened.");
        if (paid > 0)
            throw new PreconditionFailedException("OPPORTUNITY_PAID", $"opportunities/{id}",
                $"Opportunity {id} has receipts ({paid:0.00} paid); a paid deal cannot be reopened.");
    }

    /// <summary>What may still be paid; a receipt beyond it is refused.</summary>
    public static void CheckReceipt(Guid id, Stage stage, decimal amount, decimal paid, decimal receipt)
    {
        if (!stage.IsWon)
            throw new PreconditionFailedException("OPPORTUNITY_NOT_WON", $"opportunities/{id}",
                $"Opportunity {id} is {stage.Code}: payments are recorded against won opportunities only.");
        var outstanding = amount - paid;
        if (receipt > outstanding)
            throw new PreconditionFailedException("OVERPAYMENT", $"opportunities/{id}",
                $"A payment of {receipt:0.00} exceeds the outstanding {outstanding:0.00} (amount {amount:0.00}, paid {paid:0.00}).");
    }
}
