using Crm.Customer.V1;
using Crm.IntegrationTests.Support;
using Crm.Sales.V1;
using Grpc.Core;

namespace Crm.IntegrationTests.Sales;

[Collection(SuiteCollection.Name)]
public class ConversionTests(SuiteFixture suite)
{
    [Fact]
    public async Task Lead_to_qualified_to_converted_creates_one_customer_and_one_opportunity_and_the_same_key_again_nothing_new()
    {
        await using var converted = await EventProbe.StartAsync(suite.Infrastructure.RabbitMq!.AmqpUri, "Crm.Contracts:LeadConverted");
        var rep = new SalesDriver(suite.Sales, suite.Customer);
        var phone = SalesDriver.UniquePhone();
        var lead = await rep.QualifiedLeadAsync(phone);
        Assert.Equal((LeadStatus.Qualified, rep.Subject), (lead.Status, lead.OwnerId));

        var request = new ConvertLeadRequest
        {
            LeadId = lead.Id, IdempotencyKey = Guid.NewGuid().ToString(), Amount = SalesDriver.Yuan(48_000), ExpectedCloseDate = SalesDriver.InTwoMonths(),
        };
        var first = await rep.Client.ConvertLeadAsync(request);
        Assert.True(first.CustomerCreated);
        Assert.Equal((LeadStatus.Converted, first.CustomerId, first.Opportunity.Id), (first.Lead.Status, first.Lead.CustomerId, first.Lead.OpportunityId));
        Assert.Equal(("qualification", 10, "48000.00", first.CustomerId, lead.Id), (first.Opportunity.Stage, first.Opportunity.Probability,
            first.Opportunity.Amount.Amount, first.Opportunity.CustomerId, first.Opportunity.LeadId));

        var again = await rep.Client.ConvertLeadAsync(request);
        Assert.Equal((first.CustomerId, first.Opportunity.Id, true), (again.CustomerId, again.Opportunity.Id, again.CustomerCreated));

        // One customer with that phone in the customer service, one opportunity for it here.
        var customers = await rep.Customers.SearchCustomersAsync(new SearchCustomersRequest { Phone = phone });
        Assert.Equal(first.CustomerId, Assert.Single(customers.Customers).Id);
        var opportunities = await rep.Client.ListOpportunitiesAsync(new ListOpportunitiesRequest { CustomerId = first.CustomerId });
        Assert.Equal(first.Opportunity.Id, Assert.Single(opportunities.Opportunities).Id);

        // A different key on a converted lead is refused, not a second conversion.
        await Rpc.FailsWith(StatusCode.FailedPrecondition, () => rep.Client.ConvertLeadAsync(new ConvertLeadRequest(request) { IdempotencyKey = "other" }).ResponseAsync);

        await converted.WaitUntilAsync(() => converted.For("leadId", lead.Id).Count >= 1, TimeSpan.FromSeconds(15), "LeadConverted");
        var message = converted.For("leadId", lead.Id)[0].Message;
        Assert.Equal((first.CustomerId, first.Opportunity.Id, true), (message.GetProperty("customerId").GetString(),
            message.GetProperty("opportunityId").GetString(), message.GetProperty("customerCreated").GetBoolean()));
    }

    [Fact]
    public async Task A_lead_whose_phone_matches_an_existing_customer_is_linked_to_it()
    {
        var rep = new SalesDriver(suite.Sales, suite.Customer);
        var digits = SalesDriver.UniquePhone();
        var existing = await rep.Customers.CreateCustomerAsync(new CreateCustomerRequest { Profile = new CustomerProfile { Name = "刘洋", Phone = digits } });
        // Written differently on the lead: +86 and spaces; both normalise to the same E.164 number.
        var lead = await rep.QualifiedLeadAsync($"+86 {digits[..3]} {digits[3..7]} {digits[7..]}");

        var result = await rep.Client.ConvertLeadAsync(new ConvertLeadRequest
        {
            LeadId = lead.Id, IdempotencyKey = Guid.NewGuid().ToString(), Amount = SalesDriver.Yuan(12_800), ExpectedCloseDate = SalesDriver.InTwoMonths(),
        });
        Assert.False(result.CustomerCreated);
        Assert.Equal(existing.Id, result.CustomerId);
        Assert.Single((await rep.Customers.SearchCustomersAsync(new SearchCustomersRequest { Phone = digits })).Customers);
    }

    /// <summary>
    /// The first attempt created the customer but its answer was lost (here: created directly with the request id the
    /// conversion uses). The retry finds the customer by phone and still reports it as created by this conversion.
    /// </summary>
    [Fact]
    public async Task A_retry_after_a_lost_answer_reports_the_customer_as_created_by_the_conversion()
    {
        var rep = new SalesDriver(suite.Sales, suite.Customer);
        var phone = SalesDriver.UniquePhone();
        var lead = await rep.QualifiedLeadAsync(phone);
        var key = Guid.NewGuid().ToString();
        var created = await rep.Customers.CreateCustomerAsync(new CreateCustomerRequest
            { RequestId = "sales-lead:" + key, Profile = new CustomerProfile { Name = "陈静", Phone = phone } });

        var result = await rep.Client.ConvertLeadAsync(new ConvertLeadRequest
            { LeadId = lead.Id, IdempotencyKey = key, Amount = SalesDriver.Yuan(6_600), ExpectedCloseDate = SalesDriver.InTwoMonths() });
        Assert.Equal((created.Id, true), (result.CustomerId, result.CustomerCreated));
    }

    [Fact]
    public async Task Only_a_qualified_lead_converts_and_a_duplicate_open_lead_is_refused()
    {
        var rep = new SalesDriver(suite.Sales, suite.Customer);
        var phone = SalesDriver.UniquePhone();
        var lead = await rep.Client.CreateLeadAsync(new CreateLeadRequest { Lead = new LeadInput { Name = "赵雷", Phone = phone } });
        var convert = new ConvertLeadRequest { LeadId = lead.Id, IdempotencyKey = "k-" + lead.Id, Amount = SalesDriver.Yuan(1000), ExpectedCloseDate = SalesDriver.InTwoMonths() };
        await Rpc.FailsWith(StatusCode.FailedPrecondition, () => rep.Client.ConvertLeadAsync(convert).ResponseAsync);

        var duplicate = await Rpc.FailsWith(StatusCode.AlreadyExists, () => rep.Client.CreateLeadAsync(new CreateLeadRequest
            { Lead = new LeadInput { Name = "赵雷", Phone = "+86" + phone } }).ResponseAsync);
        Assert.Equal(lead.Id, duplicate.Resource()!.ResourceName);

        // Bulk import: one new, one duplicate of the open lead, one invalid; the good one still goes in.
        var import = new ImportLeadsRequest { ImportId = Guid.NewGuid().ToString() };
        import.Leads.Add(new LeadInput { Name = "孙悦", Phone = SalesDriver.UniquePhone(), SourceChannel = "event" });
        import.Leads.Add(new LeadInput { Name = "赵雷", Phone = phone });
        import.Leads.Add(new LeadInput { Name = "无号码" });
        var imported = await rep.Client.ImportLeadsAsync(import);
        Assert.Equal([Crm.Sales.V1.ImportOutcome.Created, Crm.Sales.V1.ImportOutcome.Duplicate, Crm.Sales.V1.ImportOutcome.Invalid], imported.Results.Select(r => r.Outcome));
        Assert.Equal((1, 1, 1, lead.Id), (imported.Created, imported.Duplicates, imported.Invalid, imported.Results[1].DuplicateOf));
        // The same import again creates nothing new (request ids <import_id>/<index>).
        var retried = await rep.Client.ImportLeadsAsync(import);
        Assert.Equal(imported.Results[0].LeadId, retried.Results[0].LeadId);

        // Disqualified needs a reason; once disqualified the phone is free for a new lead.
        var noReason = await Rpc.FailsWith(StatusCode.InvalidArgument, () => rep.Client.SetLeadStatusAsync(new SetLeadStatusRequest
            { LeadId = lead.Id, Status = LeadStatus.Disqualified }).ResponseAsync);
        Assert.Equal(["reason"], noReason.Fields());
        await rep.Client.SetLeadStatusAsync(new SetLeadStatusRequest { LeadId = lead.Id, Status = LeadStatus.Disqualified, Reason = "budget far below our range" });
        await rep.Client.CreateLeadAsync(new CreateLeadRequest { Lead = new LeadInput { Name = "赵雷", Phone = phone } });
    }

    /// <summary>
    /// A sales instance of its own whose customer service address has nobody listening: the conversion answers
    /// UNAVAILABLE and writes nothing; once a customer service answers on that address, the same key converts.
    /// </summary>
    [Fact]
    public async Task Conversion_fails_cleanly_while_the_customer_service_is_down_and_the_same_key_works_after()
    {
        var port = ServiceHost.FreePort();
        await using var sales = await ServiceHost.StartAsync(args => Crm.Sales.SalesApp.Build(args), suite.Infrastructure, "sales-outage", "salesoutagedb",
            connectionName: "salesdb", extraArgs: [$"--services:customer:http:0=http://127.0.0.1:{port}", "--Sales:CustomerCallTimeout=00:00:02"]);
        var rep = new SalesDriver(sales, suite.Customer);
        var phone = SalesDriver.UniquePhone();
        var lead = await rep.QualifiedLeadAsync(phone);
        var request = new ConvertLeadRequest
        {
            LeadId = lead.Id, IdempotencyKey = Guid.NewGuid().ToString(), Amount = SalesDriver.Yuan(30_000), ExpectedCloseDate = SalesDriver.InTwoMonths(),
        };

        await Rpc.FailsWith(StatusCode.Unavailable, () => rep.Client.ConvertLeadAsync(request).ResponseAsync);
        Assert.Equal((LeadStatus.Qualified, ""), ((await rep.Client.GetLeadAsync(new GetLeadRequest { LeadId = lead.Id })).Status,
            (await rep.Client.GetLeadAsync(new GetLeadRequest { LeadId = lead.Id })).OpportunityId));
        Assert.Empty((await rep.Client.ListOpportunitiesAsync(new ListOpportunitiesRequest())).Opportunities);

        await using (var customer = await ServiceHost.StartAsync(Crm.Customer.CustomerApp.Build, suite.Infrastructure, "customer-late", "customerdb",
                         extraArgs: [$"--Kestrel:Endpoints:http:Url=http://127.0.0.1:{port}"]))
        {
            var result = await rep.Client.ConvertLeadAsync(request);
            Assert.True(result.CustomerCreated);
            Assert.Equal(result.CustomerId, Assert.Single((await rep.Customers.SearchCustomersAsync(new SearchCustomersRequest { Phone = phone })).Customers).Id);
        }
        Assert.Single((await rep.Client.ListOpportunitiesAsync(new ListOpportunitiesRequest())).Opportunities);
    }
}
