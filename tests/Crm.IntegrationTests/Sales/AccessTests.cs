using Crm.IntegrationTests.Support;
using Crm.Sales.V1;
using Crm.ServiceDefaults.Security;
using Grpc.Core;

namespace Crm.IntegrationTests.Sales;

/// <summary>Row-level access: own records for sales, the team's for a sales manager, everything for admin.</summary>
[Collection(SuiteCollection.Name)]
public class AccessTests(SuiteFixture suite)
{
    [Fact]
    public async Task A_salesperson_cannot_read_anothers_lead_and_a_manager_reads_the_teams_only()
    {
        var team = "north-" + Guid.NewGuid().ToString("N")[..6];
        var alice = new SalesDriver(suite.Sales, suite.Customer, team: team);
        var bob = new SalesDriver(suite.Sales, suite.Customer, team: team);
        var carol = new SalesDriver(suite.Sales, suite.Customer, team: "south-" + Guid.NewGuid().ToString("N")[..6]);
        var manager = new SalesDriver(suite.Sales, suite.Customer, team: team, role: Roles.SalesManager);
        var aliceLead = await alice.QualifiedLeadAsync();
        var carolLead = await carol.QualifiedLeadAsync();

        await Rpc.FailsWith(StatusCode.PermissionDenied, () => bob.Client.GetLeadAsync(new GetLeadRequest { LeadId = aliceLead.Id }).ResponseAsync);
        await Rpc.FailsWith(StatusCode.PermissionDenied, () => bob.Client.SetLeadStatusAsync(new SetLeadStatusRequest
            { LeadId = aliceLead.Id, Status = LeadStatus.Disqualified, Reason = "mine now" }).ResponseAsync);
        Assert.DoesNotContain((await bob.Client.ListLeadsAsync(new ListLeadsRequest())).Leads, l => l.Id == aliceLead.Id);
        await Rpc.FailsWith(StatusCode.PermissionDenied, () => bob.Client.AssignLeadAsync(new AssignLeadRequest { LeadId = aliceLead.Id, OwnerId = bob.Subject }).ResponseAsync);

        Assert.Equal(team, (await manager.Client.GetLeadAsync(new GetLeadRequest { LeadId = aliceLead.Id })).OwnerTeam);
        await Rpc.FailsWith(StatusCode.PermissionDenied, () => manager.Client.GetLeadAsync(new GetLeadRequest { LeadId = carolLead.Id }).ResponseAsync);
        var teamLeads = await manager.Client.ListLeadsAsync(new ListLeadsRequest { Status = LeadStatus.Qualified });
        Assert.Contains(teamLeads.Leads, l => l.Id == aliceLead.Id);
        Assert.DoesNotContain(teamLeads.Leads, l => l.Id == carolLead.Id);

        // The manager hands Alice's lead to Bob: now Bob reads it and Alice does not.
        var moved = await manager.Client.AssignLeadAsync(new AssignLeadRequest { LeadId = aliceLead.Id, OwnerId = bob.Subject });
        Assert.Equal((bob.Subject, team), (moved.OwnerId, moved.OwnerTeam));
        Assert.Equal(aliceLead.Id, (await bob.Client.GetLeadAsync(new GetLeadRequest { LeadId = aliceLead.Id })).Id);
        await Rpc.FailsWith(StatusCode.PermissionDenied, () => alice.Client.GetLeadAsync(new GetLeadRequest { LeadId = aliceLead.Id }).ResponseAsync);

        // Opportunities and the forecast follow the same scope.
        var customer = await carol.NewCustomerAsync();
        var carolDeal = await carol.OpportunityAsync(customer, 9_900);
        await Rpc.FailsWith(StatusCode.PermissionDenied, () => manager.Client.GetOpportunityAsync(new GetOpportunityRequest { OpportunityId = carolDeal.Id }).ResponseAsync);
        Assert.Equal("0.00", (await manager.Client.GetForecastAsync(new GetForecastRequest { OwnerId = carol.Subject })).TotalWeighted.Amount);
        var admin = new SalesService.SalesServiceClient(suite.Sales.Channel);
        Assert.Equal("990.00", (await admin.GetForecastAsync(new GetForecastRequest { OwnerId = carol.Subject })).TotalWeighted.Amount);
    }
}
