using Crm.Customer.V1;
using Crm.Import;
using Crm.IntegrationTests.Support;
using Crm.ServiceDefaults.Security;
using Xunit.Abstractions;

namespace Crm.IntegrationTests.Customer;

/// <summary>./crm import's code against the real customer service: a small CSV with a bad row, then the same file again.</summary>
[Collection(SuiteCollection.Name)]
public sealed class ImportCommandTests(SuiteFixture suite, ITestOutputHelper output) : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("crm-import-").FullName;

    [Fact]
    public async Task A_customer_CSV_with_a_bad_row_imports_the_rest_reports_the_row_and_a_second_run_changes_nothing()
    {
        var run = Guid.NewGuid().ToString("N")[..8];
        string[] phones = [CustomerProfileTests.UniquePhone(), CustomerProfileTests.UniquePhone(), CustomerProfileTests.UniquePhone()];
        var file = Path.Combine(_folder, "customers.csv");
        await File.WriteAllTextAsync(file, $"""
            ref.system,ref.id,profile.name,profile.phone,profile.city,profile.tags,profile.marketing_consent
            erp,CLI-{run}-1,黄蓉,{phones[0]},深圳,vip|gold,true
            erp,CLI-{run}-2,"郭靖, Jr.",{phones[1]},杭州,,no
            erp,CLI-{run}-3,Bad Phone,12345,上海,,false
            erp,CLI-{run}-4,洪七公,{phones[2]},北京,,maybe
            erp,CLI-{run}-5,欧阳锋,{CustomerProfileTests.UniquePhone()},成都,,yes

            """);

        var (code, text) = await RunAsync(file, "--batch-id", "cli-" + run);
        Assert.Equal(1, code);
        Assert.Contains("created 3, updated 0, unchanged 0, rejected 2", text);
        Assert.Contains("line 4: InvalidArgument: profile.phone", text); // the service's field violation, with the file's line
        Assert.Contains("line 5: marketing_consent: 'maybe' is not true or false.", text); // unreadable here, never sent

        var customers = new CustomerService.CustomerServiceClient(suite.Customer.ChannelFor(Roles.Partner, "erp-cli"));
        var first = await customers.UpsertCustomerAsync(new UpsertCustomerRequest
        {
            Ref = new ExternalRef { System = "erp", Id = $"CLI-{run}-1" }, Mode = UpsertMode.UpdateOnly,
            Profile = new CustomerProfile { City = "深圳" }, UpdateMask = new Google.Protobuf.WellKnownTypes.FieldMask { Paths = { "city" } },
        });
        Assert.Equal("黄蓉", first.Customer.Profile.Name);
        Assert.Equal(["vip", "gold"], first.Customer.Profile.Tags);
        Assert.True(first.Customer.Profile.MarketingConsent);

        (code, text) = await RunAsync(file);
        Assert.Equal(1, code);
        Assert.Contains("created 0, updated 0, unchanged 3, rejected 2", text);
    }

    [Fact]
    public async Task An_orders_CSV_takes_consecutive_rows_of_one_order_as_its_lines_and_exits_0_when_nothing_is_rejected()
    {
        var run = Guid.NewGuid().ToString("N")[..8];
        var customers = new CustomerService.CustomerServiceClient(suite.Customer.ChannelFor(Roles.Partner, "erp-cli"));
        await customers.UpsertCustomerAsync(new UpsertCustomerRequest
        {
            Ref = new ExternalRef { System = "erp", Id = $"CLI-O-{run}" },
            Profile = new CustomerProfile { Name = "订单客户", Phone = CustomerProfileTests.UniquePhone() },
        });
        var file = Path.Combine(_folder, "orders.csv");
        await File.WriteAllTextAsync(file, $"""
            customer_ref.system,customer_ref.id,external_order_id,channel,lines.sku,lines.quantity,lines.unit_price,amount_paid,paid_at
            erp,CLI-O-{run},SO-{run}-1,store,RING-AU-750,1,1288.00,1688.00,2026-11-20T10:00:00Z
            erp,CLI-O-{run},SO-{run}-1,store,CHAIN-AU-01,2,200.00,,
            erp,CLI-O-{run},SO-{run}-2,tmall,EAR-PT-02,1,560.50,560.50,2026-11-21T09:30:00Z

            """);

        var (code, text) = await RunAsync(file);
        Assert.Equal(0, code);
        Assert.Contains("created 2, updated 0, unchanged 0, rejected 0", text);
        var orders = await new CustomerService.CustomerServiceClient(suite.Customer.Channel)
            .ListOrdersAsync(new ListOrdersRequest { CustomerId = (await customers.UpsertCustomerAsync(new UpsertCustomerRequest
            {
                Ref = new ExternalRef { System = "erp", Id = $"CLI-O-{run}" }, Mode = UpsertMode.UpdateOnly,
                Profile = new CustomerProfile { Name = "订单客户" }, UpdateMask = new Google.Protobuf.WellKnownTypes.FieldMask { Paths = { "name" } },
            })).Customer.Id });
        var first = orders.Orders.Single(o => o.ExternalOrderId == $"SO-{run}-1");
        Assert.Equal(["RING-AU-750", "CHAIN-AU-01"], first.Lines.Select(l => l.Sku));
        Assert.Equal("1688.00", first.AmountPaid.Amount);
        Assert.Equal(2, first.Lines[1].Quantity);

        // A header naming no field of the request: nothing is sent, exit code 2.
        var bad = Path.Combine(_folder, "orders-bad.csv");
        await File.WriteAllTextAsync(bad, "external_order_id,lines.skew\nSO-X,RING\n");
        (code, text) = await RunAsync(bad);
        Assert.Equal(2, code);
        Assert.Contains("column 'lines.skew' is not a field of RecordOrderRequest.", text);
    }

    [Fact]
    public async Task Without_address_it_finds_the_running_suite_in_the_AppHosts_address_file_and_says_so_when_the_suite_is_not_running()
    {
        var run = Guid.NewGuid().ToString("N")[..8];
        var file = Path.Combine(_folder, "customers.csv");
        await File.WriteAllTextAsync(file, $"ref.system,ref.id,profile.name,profile.phone\nerp,ADDR-{run},穆念慈,{CustomerProfileTests.UniquePhone()}\n");
        var data = Directory.CreateDirectory(Path.Combine(_folder, "data")).FullName;
        var addresses = Path.Combine(data, "addresses.json");
        async Task<(int Code, string Text)> Import()
        {
            var writer = new StringWriter();
            var code = await ImportCommand.RunAsync([file, "--data-dir", data, "--token", TestAuth.Token(Roles.Partner, "erp-cli")], writer, writer, interactive: false);
            output.WriteLine(writer.ToString());
            return (code, writer.ToString());
        }

        // No suite ever ran in that folder.
        var (code, text) = await Import();
        Assert.Equal(2, code);
        Assert.Contains($"the suite is not running (no {addresses}): start it with ./crm run (same data folder), or give --address.", text);

        // A file left behind by an AppHost that is gone (killed before it could delete it).
        using (var gone = System.Diagnostics.Process.Start("true")!) { await gone.WaitForExitAsync(); WriteAddresses(gone.Id); }
        (code, text) = await Import();
        Assert.Equal(2, code);
        Assert.Contains("is not running any more: start it with ./crm run", text);

        // A running suite (the file as AppHost/SuiteAddresses.cs writes it, naming a live process): used as is.
        WriteAddresses(Environment.ProcessId);
        (code, text) = await Import();
        Assert.Equal(0, code);
        Assert.Contains("created 1, updated 0, unchanged 0, rejected 0", text);

        void WriteAddresses(int pid) => File.WriteAllText(addresses, $$"""
            {
              "pid": {{pid}},
              "services": {
                "loyalty": { "grpc": "http://127.0.0.1:1", "web": "http://127.0.0.1:2", "health": "http://127.0.0.1:3/health" },
                "customer": { "grpc": "{{suite.Customer.GrpcAddress}}", "web": "http://127.0.0.1:4", "health": "http://127.0.0.1:5/health" }
              }
            }
            """);
    }

    private async Task<(int Code, string Text)> RunAsync(string file, params string[] more)
    {
        var writer = new StringWriter();
        var code = await ImportCommand.RunAsync(
            [file, "--address", suite.Customer.GrpcAddress.ToString(), "--token", TestAuth.Token(Roles.Partner, "erp-cli"), .. more],
            writer, writer, interactive: false);
        output.WriteLine(writer.ToString());
        return (code, writer.ToString());
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);
}
