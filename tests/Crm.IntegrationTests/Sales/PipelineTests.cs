using Crm.IntegrationTests.Support;
using Crm.Sales.V1;
using Crm.ServiceDefaults.Security;
using Dapper;
using Grpc.Core;

namespace Crm.IntegrationTests.Sales;

[Collection(SuiteCollection.Name)]
public class PipelineTests(SuiteFixture suite)
{
    [Fact]
    public async Task Forecast_of_100000_50000_20000_at_50_75_10_percent_in_one_month_is_89500()
    {
        var rep = new SalesDriver(suite.Sales, suite.Customer);
        var customer = await rep.NewCustomerAsync();
        var close = SalesDriver.InTwoMonths(day: 10);
        await rep.OpportunityAsync(customer, 100_000, "design_proposal", close);
        await rep.OpportunityAsync(customer, 50_000, "negotiation", SalesDriver.InTwoMonths(day: 20));
        await rep.OpportunityAsync(customer, 20_000, "qualification", SalesDriver.InTwoMonths(day: 28));

        var forecast = await rep.Client.GetForecastAsync(new GetForecastRequest());
        Assert.Equal("89500.00", forecast.TotalWeighted.Amount);
        var month = $"{close.Year:0000}-{close.Month:00}";
        var quarter = $"{close.Year}-Q{(close.Month - 1) / 3 + 1}";
        Assert.Equal([(month, "", 3, "170000.00", "89500.00"), (month, rep.Subject, 3, "170000.00", "89500.00")],
            forecast.Months.Select(b => (b.Period, b.OwnerId, b.Opportunities, b.Amount.Amount, b.Weighted.Amount)));
        Assert.Equal([(quarter, ""), (quarter, rep.Subject)], forecast.Quarters.Select(b => (b.Period, b.OwnerId)));
        Assert.All(forecast.Quarters, q => Assert.Equal("89500.00", q.Weighted.Amount));

        var report = await rep.Client.GetPipelineReportAsync(new GetPipelineReportRequest());
        Assert.Equal([("qualification", 1, "2000.00"), ("needs_analysis", 0, "0.00"), ("design_proposal", 1, "50000.00"), ("negotiation", 1, "37500.00")],
            report.OpenPipeline.Select(s => (s.Stage, s.Opportunities, s.Weighted.Amount)));
    }

    [Fact]
    public async Task Forecast_totals_only_gives_a_manager_the_teams_89500_without_a_row_per_owner()
    {
        var team = "totals-" + Guid.NewGuid().ToString("N")[..6];
        var alice = new SalesDriver(suite.Sales, suite.Customer, team: team);
        var bob = new SalesDriver(suite.Sales, suite.Customer, team: team);
        var manager = new SalesDriver(suite.Sales, suite.Customer, team: team, role: Roles.SalesManager);
        var customer = await alice.NewCustomerAsync();
        var close = SalesDriver.InTwoMonths(day: 10);
        await alice.OpportunityAsync(customer, 100_000, "design_proposal", close);
        await alice.OpportunityAsync(customer, 20_000, "qualification", close);
        await bob.OpportunityAsync(customer, 50_000, "negotiation", close);
        var month = $"{close.Year:0000}-{close.Month:00}";
        var quarter = $"{close.Year}-Q{(close.Month - 1) / 3 + 1}";

        var full = await manager.Client.GetForecastAsync(new GetForecastRequest());
        Assert.Equal("89500.00", full.TotalWeighted.Amount);
        // The owners' ids are random, so both sides are put in the same order.
        Assert.Equal(new[] { ("", "89500.00"), (alice.Subject, "52000.00"), (bob.Subject, "37500.00") }.OrderBy(x => x.Item1, StringComparer.Ordinal),
            full.Owners.Select(b => (b.OwnerId, b.Weighted.Amount)).OrderBy(x => x.OwnerId, StringComparer.Ordinal));

        var totals = await manager.Client.GetForecastAsync(new GetForecastRequest { TotalsOnly = true });
        Assert.Equal("89500.00", totals.TotalWeighted.Amount);
        Assert.Equal([(month, "", 3, "170000.00", "89500.00")], totals.Months.Select(b => (b.Period, b.OwnerId, b.Opportunities, b.Amount.Amount, b.Weighted.Amount)));
        Assert.Equal([(quarter, "", 3, "170000.00", "89500.00")], totals.Quarters.Select(b => (b.Period, b.OwnerId, b.Opportunities, b.Amount.Amount, b.Weighted.Amount)));
        Assert.Equal([("", "", 3, "89500.00")], totals.Owners.Select(b => (b.Period, b.OwnerId, b.Opportunities, b.Weighted.Amount)));

        // With an owner it is that owner's total, still without per-owner rows.
        var bobs = await manager.Client.GetForecastAsync(new GetForecastRequest { OwnerId = bob.Subject, TotalsOnly = true });
        Assert.Equal(("37500.00", 1), (bobs.TotalWeighted.Amount, bobs.Months.Count));
        Assert.Equal(("", "50000.00"), (bobs.Months[0].OwnerId, bobs.Months[0].Amount.Amount));
    }

    [Fact]
    public async Task Stage_history_win_rate_conversion_and_cycle_with_reopen()
    {
        var rep = new SalesDriver(suite.Sales, suite.Customer);
        var customer = await rep.NewCustomerAsync();
        var a = await rep.OpportunityAsync(customer, 30_000);
        var b = await rep.OpportunityAsync(customer, 8_000);

        await rep.Client.MoveStageAsync(new MoveStageRequest { OpportunityId = a.Id, Stage = "needs_analysis" });
        await rep.Client.MoveStageAsync(new MoveStageRequest { OpportunityId = a.Id, Stage = "negotiation" });
        var noReason = await Rpc.FailsWith(StatusCode.InvalidArgument, () => rep.Client.MoveStageAsync(new MoveStageRequest { OpportunityId = a.Id, Stage = "won" }).ResponseAsync);
        Assert.Equal(["reason"], noReason.Fields());
        var won = await rep.Client.MoveStageAsync(new MoveStageRequest { OpportunityId = a.Id, Stage = "won", Reason = "deposit paid, design approved" });
        Assert.Equal(("won", 100, "30000.00"), (won.Stage, won.Probability, won.Outstanding.Amount));
        await rep.Client.MoveStageAsync(new MoveStageRequest { OpportunityId = b.Id, Stage = "lost", Reason = "bought elsewhere" });

        var history = await rep.Client.ListStageHistoryAsync(new ListStageHistoryRequest { OpportunityId = a.Id, PageSize = 2 });
        var next = await rep.Client.ListStageHistoryAsync(new ListStageHistoryRequest { OpportunityId = a.Id, PageToken = history.NextPageToken });
        Assert.Equal([("", "qualification"), ("qualification", "needs_analysis"), ("needs_analysis", "negotiation"), ("negotiation", "won")],
            history.Changes.Concat(next.Changes).Select(c => (c.FromStage, c.ToStage)));
        Assert.All(history.Changes.Concat(next.Changes), c => Assert.Equal(rep.Subject, c.ChangedBy));
        Assert.Equal("deposit paid, design approved", next.Changes[^1].Reason);

        var report = await rep.Client.GetPipelineReportAsync(new GetPipelineReportRequest());
        Assert.Equal((1, 1, "50.00"), (report.Won, report.Lost, report.WinRatePercent));
        Assert.Equal("0.00", report.AverageCycleDays); // created and won within the same minute
        // Both reached qualification; only A went on (needs_analysis, then negotiation and won; design_proposal was skipped over).
        Assert.Equal([("qualification", "needs_analysis", 2, 1), ("needs_analysis", "design_proposal", 1, 1), ("design_proposal", "negotiation", 1, 1), ("negotiation", "won", 1, 1)],
            report.Conversions.Select(c => (c.FromStage, c.ToStage, c.Reached, c.Advanced)));
        Assert.Equal("50.00", report.Conversions[0].RatePercent);

        // Lost → reopened → won is the explicit way back.
        await rep.Client.ReopenOpportunityAsync(new ReopenOpportunityRequest { OpportunityId = b.Id, Stage = "negotiation", Reason = "came back" });
        var rewon = await rep.Client.MoveStageAsync(new MoveStageRequest { OpportunityId = b.Id, Stage = "won", Reason = "signed" });
        Assert.Equal(("won", ""), (rewon.Stage, rewon.LeadId));
    }

    [Fact]
    public async Task Conversion_counts_the_furthest_stage_reached_after_a_step_back_a_loss_and_a_reopen()
    {
        var rep = new SalesDriver(suite.Sales, suite.Customer);
        var customer = await rep.NewCustomerAsync();
        var a = await rep.OpportunityAsync(customer, 60_000);
        var b = await rep.OpportunityAsync(customer, 40_000, "needs_analysis");
        var c = await rep.OpportunityAsync(customer, 12_000);

        // A: negotiation, back to needs_analysis, then lost: it still reached negotiation.
        await rep.Client.MoveStageAsync(new MoveStageRequest { OpportunityId = a.Id, Stage = "negotiation" });
        await rep.Client.MoveStageAsync(new MoveStageRequest { OpportunityId = a.Id, Stage = "needs_analysis" });
        await rep.Client.MoveStageAsync(new MoveStageRequest { OpportunityId = a.Id, Stage = "lost", Reason = "预算不足" });
        // B: opened in needs_analysis, lost, reopened into design_proposal and won.
        await rep.Client.MoveStageAsync(new MoveStageRequest { OpportunityId = b.Id, Stage = "lost", Reason = "选择了竞品" });
        await rep.Client.ReopenOpportunityAsync(new ReopenOpportunityRequest { OpportunityId = b.Id, Stage = "design_proposal", Reason = "came back" });
        await rep.Client.MoveStageAsync(new MoveStageRequest { OpportunityId = b.Id, Stage = "won", Reason = "signed" });
        // C: lost straight from qualification.
        await rep.Client.MoveStageAsync(new MoveStageRequest { OpportunityId = c.Id, Stage = "lost", Reason = "联系不上客户" });

        var report = await rep.Client.GetPipelineReportAsync(new GetPipelineReportRequest());
        Assert.Equal((1, 2, "33.33"), (report.Won, report.Lost, report.WinRatePercent));
        Assert.Equal([("qualification", "needs_analysis", 3, 2), ("needs_analysis", "design_proposal", 2, 2), ("design_proposal", "negotiation", 2, 2), ("negotiation", "won", 2, 1)],
            report.Conversions.Select(x => (x.FromStage, x.ToStage, x.Reached, x.Advanced)));
        Assert.All(report.OpenPipeline, s => Assert.Equal((0, "0.00"), (s.Opportunities, s.Amount.Amount)));
        await using var connection = await suite.SalesDb.OpenConnectionAsync();
        Assert.Equal([("lost", "negotiation", 60_000m), ("won", "won", 40_000m), ("lost", "qualification", 12_000m)],
            (await connection.QueryAsync<(string, string, decimal)>("SELECT stage, furthest_stage, amount FROM opportunities WHERE owner_id = @s ORDER BY seq",
                new { s = rep.Subject })).ToList());
    }

    [Fact]
    public async Task Bad_input_gets_precise_codes_and_writes_nothing()
    {
        var rep = new SalesDriver(suite.Sales, suite.Customer);
        var customer = await rep.NewCustomerAsync();
        var lost = await rep.OpportunityAsync(customer, 20_000);
        lost = await rep.Client.MoveStageAsync(new MoveStageRequest { OpportunityId = lost.Id, Stage = "lost", Reason = "no budget" });
        await using var connection = await suite.SalesDb.OpenConnectionAsync();
        async Task<(long, long, long)> Counts() => (
            await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM opportunities WHERE owner_id = @s", new { s = rep.Subject }),
            await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM stage_history h JOIN opportunities o ON o.id = h.opportunity_id WHERE o.owner_id = @s", new { s = rep.Subject }),
            await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM change_events WHERE payload->>'ownerId' = @s", new { s = rep.Subject }));
        var before = await Counts();

        var unknown = await Rpc.FailsWith(StatusCode.InvalidArgument, () => rep.Client.MoveStageAsync(new MoveStageRequest { OpportunityId = lost.Id, Stage = "closing" }).ResponseAsync);
        Assert.Equal(["stage"], unknown.Fields());
        var unknownNew = await Rpc.FailsWith(StatusCode.InvalidArgument, () => rep.OpportunityAsync(customer, 5_000, stage: "closing"));
        Assert.Equal(["stage"], unknownNew.Fields());
        var negative = await Rpc.FailsWith(StatusCode.InvalidArgument, () => rep.Client.CreateOpportunityAsync(new CreateOpportunityRequest
            { CustomerId = customer, Title = "Ring", Amount = SalesDriver.Yuan(-100), ExpectedCloseDate = SalesDriver.InTwoMonths() }).ResponseAsync);
        Assert.Equal(["amount"], negative.Fields());
        var yesterday = DateTime.UtcNow.AddDays(-2);
        var past = await Rpc.FailsWith(StatusCode.InvalidArgument, () => rep.Client.CreateOpportunityAsync(new CreateOpportunityRequest
        {
            CustomerId = customer, Title = "Ring", Amount = SalesDriver.Yuan(100),
            ExpectedCloseDate = new Google.Type.Date { Year = yesterday.Year, Month = yesterday.Month, Day = yesterday.Day },
        }).ResponseAsync);
        Assert.Equal(["expected_close_date"], past.Fields());
        var closedWon = await Rpc.FailsWith(StatusCode.InvalidArgument, () => rep.Client.CreateOpportunityAsync(new CreateOpportunityRequest
            { CustomerId = customer, Title = "Ring", Amount = SalesDriver.Yuan(100), ExpectedCloseDate = SalesDriver.InTwoMonths(), Stage = "won" }).ResponseAsync);
        Assert.Equal(["stage"], closedWon.Fields());
        var lostToWon = await Rpc.FailsWith(StatusCode.FailedPrecondition, () => rep.Client.MoveStageAsync(new MoveStageRequest
            { OpportunityId = lost.Id, Stage = "won", Reason = "changed their mind" }).ResponseAsync);
        Assert.Contains("reopen", lostToWon.Status.Detail);
        await Rpc.FailsWith(StatusCode.FailedPrecondition, () => rep.Client.RecordReceiptAsync(new RecordReceiptRequest
            { ReceiptId = "R-" + Guid.NewGuid(), OpportunityId = lost.Id, Amount = SalesDriver.Yuan(100), Method = "cash" }).ResponseAsync);
        await Rpc.FailsWith(StatusCode.Aborted, () => rep.Client.MoveStageAsync(new MoveStageRequest
            { OpportunityId = lost.Id, Stage = "qualification", Version = lost.Version - 1 }).ResponseAsync);

        Assert.Equal(before, await Counts());
        var after = await rep.Client.GetOpportunityAsync(new GetOpportunityRequest { OpportunityId = lost.Id });
        Assert.Equal(("lost", lost.Version, "no budget"), (after.Stage, after.Version, after.CloseReason));
    }
}
