using Crm.Common.V1;
using Crm.Customer.V1;
using Crm.IntegrationTests.Support;
using Crm.Sales.V1;
using Crm.ServiceDefaults.Security;

namespace Crm.IntegrationTests.Sales;

/// <summary>A salesperson (own subject and team) working against a sales host, plus the customer service beside it.</summary>
public sealed class SalesDriver
{
    public SalesDriver(ServiceHost sales, ServiceHost customer, string? subject = null, string? team = null, string role = Roles.Sales)
    {
        Subject = subject ?? "rep-" + Guid.NewGuid().ToString("N")[..10];
        Team = team;
        Client = new SalesService.SalesServiceClient(sales.ChannelFor(role, Subject, team));
        Customers = new CustomerService.CustomerServiceClient(customer.Channel);
    }

    public string Subject { get; }
    public string? Team { get; }
    public SalesService.SalesServiceClient Client { get; }
    public CustomerService.CustomerServiceClient Customers { get; }

    public static Money Yuan(decimal amount) => Money.FromDecimal(amount);

    /// <summary>A date in the month after next (never in the past, however long the run).</summary>
    public static Google.Type.Date InTwoMonths(int day = 15)
    {
        var d = DateTime.UtcNow.AddMonths(2);
        return new Google.Type.Date { Year = d.Year, Month = d.Month, Day = day };
    }

    public static string UniquePhone() => Customer.CustomerProfileTests.UniquePhone();

    public async Task<Lead> QualifiedLeadAsync(string? phone = null, string name = "陈静")
    {
        var lead = await Client.CreateLeadAsync(new CreateLeadRequest
        {
            Lead = new LeadInput { Name = name, Phone = phone ?? UniquePhone(), SourceChannel = "wechat", Interest = "定制铂金钻戒" },
        });
        await Client.SetLeadStatusAsync(new SetLeadStatusRequest { LeadId = lead.Id, Status = LeadStatus.Contacted });
        return await Client.SetLeadStatusAsync(new SetLeadStatusRequest { LeadId = lead.Id, Status = LeadStatus.Qualified });
    }

    public async Task<string> NewCustomerAsync() =>
        (await Customers.CreateCustomerAsync(new CreateCustomerRequest { Profile = new CustomerProfile { Name = "周敏", Phone = UniquePhone() } })).Id;

    public Task<Opportunity> OpportunityAsync(string customerId, decimal amount, string stage = "", Google.Type.Date? close = null) =>
        Client.CreateOpportunityAsync(new CreateOpportunityRequest
        {
            CustomerId = customerId, Title = $"Custom ring {amount}", ProductInterest = "铂金钻戒", Amount = Yuan(amount),
            ExpectedCloseDate = close ?? InTwoMonths(), Stage = stage,
        }).ResponseAsync;
}
