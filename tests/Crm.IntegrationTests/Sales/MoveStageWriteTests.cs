using Crm.IntegrationTests.Support;
using Crm.Sales.V1;
using Dapper;
using Grpc.Core;

namespace Crm.IntegrationTests.Sales;

/// <summary>
/// A move writes the opportunity, its stage-history entry, the pipeline summary and its audit row in one round trip of one
/// transaction: all four are there after a move, and a move refused for a stale version leaves none of them.
/// </summary>
[Collection(SuiteCollection.Name)]
public class MoveStageWriteTests(SuiteFixture suite)
{
    [Fact]
    public async Task A_move_writes_history_summary_and_audit_together_and_a_stale_version_writes_none()
    {
        var team = "writes-" + Guid.NewGuid().ToString("N")[..6];
        var rep = new SalesDriver(suite.Sales, suite.Customer, team: team);
        var customer = await rep.NewCustomerAsync();
        var deal = await rep.OpportunityAsync(customer, 45_000);

        var moved = await rep.Client.MoveStageAsync(new MoveStageRequest { OpportunityId = deal.Id, Stage = "design_proposal", Version = deal.Version });
        Assert.Equal(("design_proposal", 50, deal.Version + 1), (moved.Stage, moved.Probability, moved.Version));

        var stale = new MoveStageRequest { OpportunityId = deal.Id, Stage = "negotiation", Version = deal.Version };
        await Rpc.FailsWith(StatusCode.Aborted, () => rep.Client.MoveStageAsync(stale).ResponseAsync);

        var won = await rep.Client.MoveStageAsync(new MoveStageRequest { OpportunityId = deal.Id, Stage = "won", Reason = "戒指设计确认", Version = moved.Version });
        Assert.Equal(("won", deal.Version + 2), (won.Stage, won.Version));

        await using var connection = await suite.SalesDb.OpenConnectionAsync();
        var id = Guid.Parse(deal.Id);
        Assert.Equal([("", "qualification", "opened"), ("qualification", "design_proposal", ""), ("design_proposal", "won", "戒指设计确认")],
            (await connection.QueryAsync<(string, string, string)>(
                "SELECT coalesce(from_stage, ''), to_stage, coalesce(reason, '') FROM stage_history WHERE opportunity_id = @id ORDER BY id", new { id })).ToList());
        // One audit row per accepted move, none for the refused one.
        Assert.Equal([(rep.Subject, "OK"), (rep.Subject, "OK")],
            (await connection.QueryAsync<(string, string)>(
                "SELECT subject, outcome FROM audit_events WHERE target_id = @target AND rpc LIKE '%/MoveStage' ORDER BY id",
                new { target = deal.Id })).ToList());
        // The summary counts the deal once, as won having reached won, and nothing in the stages it passed through.
        Assert.Equal([("design_proposal", "design_proposal", 0), ("qualification", "qualification", 0), ("won", "won", 1)],
            (await connection.QueryAsync<(string, string, int)>(
                "SELECT stage, furthest_stage, opportunities FROM pipeline_counts WHERE owner_team = @team ORDER BY stage", new { team })).ToList());
        Assert.Equal(1, await connection.ExecuteScalarAsync<int>(
            "SELECT count(*) FROM change_events WHERE event_type = 'OpportunityWon' AND payload->>'opportunityId' = @opportunity",
            new { opportunity = deal.Id }));
    }
}
