using Crm.Customer.V1;
using Crm.IntegrationTests.Support;
using Dapper;
using Grpc.Core;
using Xunit.Abstractions;

namespace Crm.IntegrationTests.Security;

/// <summary>No phone number or e-mail address of a test customer appears in what the services logged.</summary>
[Collection(SuiteCollection.Name)]
public sealed class PiiLogTests(SuiteFixture suite, ITestOutputHelper output)
{
    [Fact]
    public async Task Logs_contain_no_phone_number_or_email_address_of_the_fixtures()
    {
        var client = new CustomerService.CustomerServiceClient(suite.Customer.Channel);
        var phone = Customer.CustomerProfileTests.UniquePhone();
        var email = $"pii.{Guid.NewGuid():N}@example.com";
        // Traffic that logs: a registration, a duplicate phone, invalid phone and e-mail echoed in validation errors.
        var created = await client.CreateCustomerAsync(new CreateCustomerRequest { Profile = new CustomerProfile { Name = "林月", Phone = phone, Email = email } });
        await Assert.ThrowsAsync<RpcException>(() => client.CreateCustomerAsync(new CreateCustomerRequest { Profile = new CustomerProfile { Name = "林月", Phone = phone } }).ResponseAsync);
        var badPhone = "1" + phone.Where(char.IsDigit).TakeLast(10).Aggregate("", (s, c) => s + c) + "99";
        var badEmail = $"not-an-email.{Guid.NewGuid():N}@";
        await Assert.ThrowsAsync<RpcException>(() => client.CreateCustomerAsync(new CreateCustomerRequest { Profile = new CustomerProfile { Name = "林月", Phone = badPhone, Email = badEmail } }).ResponseAsync);
        await client.RecordOrderAsync(Order(created.Id));

        await using var db = await suite.CustomerDb.OpenConnectionAsync();
        var people = (await db.QueryAsync<(string Phone, string? Email)>("SELECT phone, email FROM customers")).ToList();
        var secrets = people.SelectMany(p => new[] { p.Phone, p.Phone.TrimStart('+').Length > 2 ? p.Phone[3..] : p.Phone, p.Email })
            .Where(s => !string.IsNullOrEmpty(s)).Select(s => s!).Append(badPhone).Append(badEmail.TrimEnd('@')).Distinct().ToList();
        var lines = LogCapture.Instance.Lines.ToList();
        output.WriteLine($"{lines.Count} log lines searched for {secrets.Count} phone numbers and e-mail addresses of {people.Count} customers");
        Assert.NotEmpty(lines);
        Assert.Contains(lines, l => l.Contains("rejected invalid input", StringComparison.Ordinal)); // the echo path was exercised
        var leaks = lines.Where(l => secrets.Any(s => l.Contains(s, StringComparison.OrdinalIgnoreCase))).Take(5).ToList();
        Assert.True(leaks.Count == 0, "Personal data in the logs:\n" + string.Join("\n", leaks));
    }

    private static RecordOrderRequest Order(string customerId)
    {
        var order = new RecordOrderRequest
        {
            CustomerId = customerId, ExternalOrderId = "ERP-" + Guid.NewGuid().ToString("N"), Channel = "store",
            AmountPaid = new Crm.Common.V1.Money { Amount = "88.00" },
            PaidAt = Google.Protobuf.WellKnownTypes.Timestamp.FromDateTime(DateTime.UtcNow.AddMinutes(-1)),
        };
        order.Lines.Add(new OrderLine { Sku = "CHARM-1", Quantity = 1, UnitPrice = new Crm.Common.V1.Money { Amount = "88.00" } });
        return order;
    }
}
