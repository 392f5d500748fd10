using Crm.IntegrationTests.Support;
using Crm.Sales;
using Crm.Sales.Reports;
using Crm.Sales.V1;
using Crm.ServiceDefaults.Security;
using Dapper;
using Microsoft.Extensions.DependencyInjection;

namespace Crm.IntegrationTests.Sales;

/// <summary>
/// The pipeline report reads the pipeline_counts summary kept with every create, move, close and reopen; it must
/// give exactly what grouping the opportunities themselves gives.
/// </summary>
[Collection(SuiteCollection.Name)]
public class PipelineCountsTests(SuiteFixture suite)
{
    [Fact]
    public async Task The_service_plans_its_reports_without_parallel_workers()
    {
        // Two workers made the reports for everyone 5 x the aggregate scan on 2 cores instead of 1.6-1.8 x (bench/NOTES.md).
        await using var connection = await suite.Sales.Services.GetRequiredService<Npgsql.NpgsqlDataSource>().OpenConnectionAsync();
        Assert.Equal("0", await connection.ExecuteScalarAsync<string>("SHOW max_parallel_workers_per_gather"));
    }

    [Fact]
    public async Task The_report_from_the_summary_equals_the_report_from_the_rows_after_creates_moves_wins_losses_and_reopens()
    {
        var team = "east-" + Guid.NewGuid().ToString("N")[..6];
        var rep = new SalesDriver(suite.Sales, suite.Customer, team: team);
        var rep2 = new SalesDriver(suite.Sales, suite.Customer, team: team);
        var customer = await rep.NewCustomerAsync();
        var a = await rep.OpportunityAsync(customer, 50_000);
        var b = await rep.OpportunityAsync(customer, 20_000);
        var c = await rep.OpportunityAsync(customer, 8_000);
        var d = await rep.OpportunityAsync(customer, 30_000, "needs_analysis");
        var e = await rep.OpportunityAsync(customer, 12_000);
        var f = await rep2.OpportunityAsync(customer, 40_000, "negotiation");
        // Opened 10 and 20 days ago: won now, they took 10 and 20 days.
        await using var connection = await suite.SalesDb.OpenConnectionAsync();
        await connection.ExecuteAsync("UPDATE opportunities SET created_at = created_at - interval '10 days' WHERE id = @id", new { id = Guid.Parse(a.Id) });
        await connection.ExecuteAsync("UPDATE opportunities SET created_at = created_at - interval '20 days' WHERE id = @id", new { id = Guid.Parse(b.Id) });

        await Move(rep, a.Id, "needs_analysis");
        await Move(rep, a.Id, "negotiation");
        await Move(rep, a.Id, "won", "deposit paid");
        await Move(rep, b.Id, "design_proposal");
        await Move(rep, b.Id, "won", "signed");
        await rep.Client.ReopenOpportunityAsync(new ReopenOpportunityRequest { OpportunityId = b.Id, Stage = "negotiation", Reason = "price changed" });
        await Move(rep, b.Id, "won", "signed again");
        await Move(rep, c.Id, "negotiation");
        await Move(rep, c.Id, "lost", "预算不足");
        await rep.Client.ReopenOpportunityAsync(new ReopenOpportunityRequest { OpportunityId = c.Id, Stage = "needs_analysis", Reason = "came back" });
        await Move(rep, d.Id, "qualification");
        await Move(rep, d.Id, "lost", "选择了竞品");
        await Move(rep2, f.Id, "won", "wedding set");

        var report = await rep.Client.GetPipelineReportAsync(new GetPipelineReportRequest());
        Assert.Equal((2, 1, "66.67", "15.00"), (report.Won, report.Lost, report.WinRatePercent, report.AverageCycleDays));
        Assert.Equal([("qualification", "needs_analysis", 5, 4), ("needs_analysis", "design_proposal", 4, 3), ("design_proposal", "negotiation", 3, 3), ("negotiation", "won", 3, 2)],
            report.Conversions.Select(x => (x.FromStage, x.ToStage, x.Reached, x.Advanced)));
        Assert.Equal([("qualification", 1, "12000.00"), ("needs_analysis", 1, "8000.00"), ("design_proposal", 0, "0.00"), ("negotiation", 0, "0.00")],
            report.OpenPipeline.Select(s => (s.Stage, s.Opportunities, s.Amount.Amount)));

        var reports = suite.Sales.Services.GetRequiredService<SalesReports>();
        foreach (var scope in new[]
                 {
                     new Scope(rep.Subject, team, All: false, Manager: false), new Scope("mgr-" + team, team, All: false, Manager: true),
                     new Scope("admin", null, All: true, Manager: false),
                 })
        {
            var fromSummary = await reports.PipelineAsync(scope, null, fromRows: false, CancellationToken.None);
            var fromRows = await reports.PipelineAsync(scope, null, fromRows: true, CancellationToken.None);
            Assert.Equal((fromRows.Won, fromRows.Lost, fromRows.AverageCycleDays), (fromSummary.Won, fromSummary.Lost, fromSummary.AverageCycleDays));
            Assert.Equal(fromRows.Conversions, fromSummary.Conversions);
            Assert.Equal(fromRows.OpenPipeline, fromSummary.OpenPipeline);
        }
        var team3 = await reports.PipelineAsync(new Scope("mgr-" + team, team, All: false, Manager: true), null, fromRows: false, CancellationToken.None);
        Assert.Equal((3, 1, 10.00m), (team3.Won, team3.Lost, team3.AverageCycleDays)); // the team: 10, 20 and 0 days

        // The summary rows themselves, seconds included, are what grouping the rows gives for this team.
        await AssertSummaryMatchesRowsAsync(connection, team);
    }

    [Fact]
    public async Task Moves_of_one_owner_in_opposite_directions_and_of_two_owners_run_in_parallel_without_deadlock_and_keep_the_summary_exact()
    {
        var team = "west-" + Guid.NewGuid().ToString("N")[..6];
        var rep = new SalesDriver(suite.Sales, suite.Customer, team: team);
        var rep2 = new SalesDriver(suite.Sales, suite.Customer, team: team);
        var customer = await rep.NewCustomerAsync();
        var forward = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => rep.OpportunityAsync(customer, 10_000, "qualification")));
        var backward = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => rep.OpportunityAsync(customer, 10_000, "negotiation")));
        var other = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => rep2.OpportunityAsync(customer, 10_000, "qualification")));

        // Each opportunity goes back and forth between the same two stages, half of them starting on each side, so
        // the two rows of one owner are taken in both orders at the same time.
        var start = new TaskCompletionSource();
        async Task Shuttle(SalesDriver who, string id, string first, string second)
        {
            await start.Task;
            for (var i = 0; i < 6; i++) await Move(who, id, i % 2 == 0 ? second : first);
        }
        var runs = forward.Select(o => Shuttle(rep, o.Id, "qualification", "negotiation"))
            .Concat(backward.Select(o => Shuttle(rep, o.Id, "negotiation", "qualification")))
            .Concat(other.Select(o => Shuttle(rep2, o.Id, "qualification", "negotiation")))
            .ToList();
        start.SetResult();
        await Task.WhenAll(runs);

        // Six moves each: everyone is back where it started.
        var report = await rep.Client.GetPipelineReportAsync(new GetPipelineReportRequest());
        Assert.Equal([("qualification", 6), ("needs_analysis", 0), ("design_proposal", 0), ("negotiation", 6)],
            report.OpenPipeline.Select(s => (s.Stage, s.Opportunities)));
        await using var connection = await suite.SalesDb.OpenConnectionAsync();
        await AssertSummaryMatchesRowsAsync(connection, team);
    }

    private static Task<Opportunity> Move(SalesDriver who, string id, string stage, string reason = "") =>
        who.Client.MoveStageAsync(new MoveStageRequest { OpportunityId = id, Stage = stage, Reason = reason }).ResponseAsync;

    private static async Task AssertSummaryMatchesRowsAsync(Npgsql.NpgsqlConnection connection, string team)
    {
        var rows = (await connection.QueryAsync<(string, string, string, int, decimal)>("""
            SELECT owner_id, stage, coalesce(furthest_stage, ''), count(*)::int, coalesce(sum(extract(epoch FROM won_at - created_at)), 0)
            FROM opportunities WHERE owner_team = @team GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
            """, new { team })).ToList();
        var summary = (await connection.QueryAsync<(string, string, string, int, decimal)>("""
            SELECT owner_id, stage, furthest_stage, opportunities, won_seconds FROM pipeline_counts
            WHERE owner_team = @team AND opportunities <> 0 ORDER BY 1, 2, 3
            """, new { team })).ToList();
        Assert.NotEmpty(rows);
        Assert.Equal(rows, summary);
    }
}
