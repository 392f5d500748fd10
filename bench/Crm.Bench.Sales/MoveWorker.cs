using Crm.Sales.Opportunities;
using Crm.Sales.V1;

namespace Crm.Bench.Sales;

/// <summary>
/// MoveStage calls for the closed loop. Each client works its own share of the seeded open opportunities (so no two
/// clients move the same one and no move is refused): the next open stage in turn, and every 20th move closes the
/// deal as won or lost with a reason (a closing move also writes an OpportunityWon/Lost outbox row) while the client
/// has others left.
/// </summary>
public sealed class MoveWorker(SalesService.SalesServiceClient client, Pipeline pipeline, List<(Guid Id, string Stage)> share, int seed)
{
    private readonly string[] _open = pipeline.Open.Select(s => s.Code).ToArray();
    private readonly Random _random = new(seed);
    private int _moves;

    public async Task MoveAsync(CancellationToken ct)
    {
        var i = _random.Next(share.Count);
        var (id, stage) = share[i];
        var close = ++_moves % 20 == 0 && share.Count > 1;
        var won = _random.Next(2) == 0;
        var target = close ? (won ? Pipeline.Won : Pipeline.Lost) : _open[(Array.IndexOf(_open, stage) + 1) % _open.Length];
        await client.MoveStageAsync(new MoveStageRequest
        {
            OpportunityId = id.ToString(), Stage = target, Reason = close ? (won ? "客户确认设计" : "预算不足") : "",
        }, deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: ct);
        if (close) share.RemoveAt(i);
        else share[i] = (id, target);
    }

    public static List<(Guid Id, string Stage)>[] Shares(IEnumerable<SeedOpportunity> opportunities, int clients)
    {
        var shares = Enumerable.Range(0, clients).Select(_ => new List<(Guid, string)>()).ToArray();
        var n = 0;
        foreach (var o in opportunities.Where(o => !o.Closed)) shares[n++ % clients].Add((o.Id, o.Stage));
        return shares;
    }
}
