namespace Crm.Tickets.Domain;

/// <summary>
/// The rows of sla_targets a ticket should have: one per SLA target whose clock runs (not met, not breached, not paused,
/// ticket open). The scheduler and ListAtRisk read only those rows; whoever changes a ticket keeps them in step.
/// </summary>
public static class RunningTargets
{
    public const short FirstResponse = 1, Resolution = 2;

    public static string Name(short target) => target == FirstResponse ? "first_response" : "resolution";

    public static short Number(string name) => name == "first_response" ? FirstResponse : Resolution;

    public static List<(short Target, DateTime DueAt)> Of(TicketRow row)
    {
        var running = new List<(short, DateTime)>(2);
        if (!States.IsOpen(row.State)) return running;
        if (row.FrMetAt is null && row.FrBreachedAt is null) running.Add((FirstResponse, row.FrDueAt));
        if (row.ResMetAt is null && row.ResBreachedAt is null && row.ResDueAt is { } due) running.Add((Resolution, due));
        return running;
    }
}
