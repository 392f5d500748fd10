using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Crm.Customer.V1;
using Crm.IntegrationTests.Support;
using Crm.ServiceDefaults.Security;

namespace Crm.IntegrationTests.Customer;

/// <summary>The partner-facing RPCs over plain HTTP/1.1 and JSON (gRPC JSON transcoding): same auth, same checks, same errors.</summary>
[Collection(SuiteCollection.Name)]
public sealed class HttpJsonTests(SuiteFixture suite)
{
    private HttpClient Client(string? token)
    {
        var http = new HttpClient { BaseAddress = suite.Customer.WebAddress };
        if (token is not null) http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return http;
    }

    [Fact]
    public async Task A_partner_upserts_a_customer_records_and_reads_an_order_over_HTTP_JSON()
    {
        using var http = Client(TestAuth.Token(Roles.Partner, "erp-http"));
        var erpId = "H" + Guid.NewGuid().ToString("N")[..10];
        var upsert = await http.PostAsJsonAsync("/v1/customers:upsert", new
        {
            @ref = new { system = "erp", id = erpId },
            profile = new { name = "郭靖", phone = CustomerProfileTests.UniquePhone(), city = "襄阳" },
            mode = "UPSERT_MODE_CREATE_ONLY",
        });
        Assert.Equal(HttpStatusCode.OK, upsert.StatusCode);
        var created = await upsert.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("UPSERT_OUTCOME_CREATED", created.GetProperty("outcome").GetString());
        var customerId = created.GetProperty("customer").GetProperty("id").GetString();

        var externalOrderId = "HTTP-" + Guid.NewGuid().ToString("N")[..12];
        var order = await http.PostAsJsonAsync("/v1/orders", new
        {
            customerRef = new { system = "erp", id = erpId }, externalOrderId, channel = "web",
            lines = new[] { new { sku = "RING-AU-750", quantity = 1, unitPrice = new { amount = "1288.00" } } },
            amountPaid = new { amount = "1288.00" }, paidAt = DateTime.UtcNow.AddMinutes(-3).ToString("O"),
        });
        Assert.Equal(HttpStatusCode.OK, order.StatusCode);
        var orderId = (await order.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString();

        var read = await http.GetFromJsonAsync<JsonElement>($"/v1/orders/{orderId}");
        Assert.Equal((customerId, "1288.00"), (read.GetProperty("customerId").GetString(), read.GetProperty("amountPaid").GetProperty("amount").GetString()));
        var list = await http.GetFromJsonAsync<JsonElement>($"/v1/customers/{customerId}/orders");
        Assert.Equal([orderId], list.GetProperty("orders").EnumerateArray().Select(o => o.GetProperty("id").GetString()));

        // Same auth rules: no token 401, a role without the RPC 403.
        using var anonymous = Client(null);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync($"/v1/orders/{orderId}")).StatusCode);
        using var member = Client(TestAuth.Token(Roles.Member, Guid.NewGuid().ToString()));
        Assert.Equal(HttpStatusCode.Forbidden, (await member.PostAsJsonAsync("/v1/customers:upsert", new { })).StatusCode);
    }

    [Fact]
    public async Task Bad_input_gets_the_same_field_violations_over_HTTP_JSON_as_over_gRPC()
    {
        var token = TestAuth.Token(Roles.Partner, "erp-http");
        var bad = new RecordOrderRequest
        {
            CustomerId = "not-a-uuid", ExternalOrderId = "", Channel = "",
            AmountPaid = new Crm.Common.V1.Money { Amount = "-1.00" },
        };
        bad.Lines.Add(new OrderLine { Sku = new string('S', 65), Quantity = 0, UnitPrice = new Crm.Common.V1.Money { Amount = "1.00" } });

        var overGrpc = await Rpc.FailsWith(Grpc.Core.StatusCode.InvalidArgument,
            () => new CustomerService.CustomerServiceClient(suite.Customer.ChannelWithToken(token)).RecordOrderAsync(bad).ResponseAsync);

        using var http = Client(token);
        var response = await http.PostAsync("/v1/orders", new StringContent(Google.Protobuf.JsonFormatter.Default.Format(bad), System.Text.Encoding.UTF8, "application/json"));
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{response.StatusCode}: {await response.Content.ReadAsStringAsync()} {string.Join("\n", LogCapture.Instance.Lines.Where(l => l.StartsWith("Error") || l.StartsWith("Warn")).TakeLast(3))}");
        var status = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(3, status.GetProperty("code").GetInt32()); // INVALID_ARGUMENT
        var fields = status.GetProperty("details").EnumerateArray()
            .Where(d => d.GetProperty("@type").GetString() == "type.googleapis.com/google.rpc.BadRequest")
            .SelectMany(d => d.GetProperty("fieldViolations").EnumerateArray()).Select(v => v.GetProperty("field").GetString()!).Order().ToList();
        Assert.NotEmpty(fields);
        Assert.Equal(overGrpc.Fields(), fields);
    }
}
