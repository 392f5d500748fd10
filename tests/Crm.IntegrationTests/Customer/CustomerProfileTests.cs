using Crm.Customer.V1;
using Crm.IntegrationTests.Support;
using Dapper;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;

namespace Crm.IntegrationTests.Customer;

[Collection(SuiteCollection.Name)]
public class CustomerProfileTests(SuiteFixture suite)
{
    private readonly CustomerService.CustomerServiceClient _client = new(suite.Customer.Channel);

    internal static string UniquePhone() => "139" + Random.Shared.NextInt64(10_000_000, 99_999_999);

    [Fact]
    public async Task Create_get_stale_update_and_search_with_paging()
    {
        var tag = "it-" + Guid.NewGuid().ToString("N")[..8];
        var profile = new CustomerProfile { Name = "李娜", Phone = UniquePhone(), Email = $"Li.{tag}@Example.com", City = "深圳", Region = "广东",
            Birthday = new Google.Type.Date { Year = 1990, Month = 5, Day = 20 }, Gender = Gender.Female, MarketingConsent = true };
        profile.Tags.Add(tag);
        var created = await _client.CreateCustomerAsync(new CreateCustomerRequest { Profile = profile });

        Assert.Equal(1, created.Version);
        Assert.Equal($"li.{tag}@example.com", created.Profile.Email);
        Assert.StartsWith("+86139", created.Profile.Phone);

        var read = await _client.GetCustomerAsync(new GetCustomerRequest { Id = created.Id });
        Assert.Equal(created, read);

        var update = new UpdateCustomerRequest
        {
            Id = created.Id, Version = 1, Profile = new CustomerProfile { City = "广州" },
            UpdateMask = new FieldMask { Paths = { "city" } },
        };
        var updated = await _client.UpdateCustomerAsync(update);
        Assert.Equal((2L, "广州", "李娜"), (updated.Version, updated.Profile.City, updated.Profile.Name));

        // A second writer still holding version 1 is told to read again, and changes nothing.
        update.Profile.City = "珠海";
        var stale = await Rpc.FailsWith(StatusCode.Aborted, () => _client.UpdateCustomerAsync(update).ResponseAsync);
        Assert.Contains("version 1", stale.Status.Detail);
        Assert.Equal("广州", (await _client.GetCustomerAsync(new GetCustomerRequest { Id = created.Id })).Profile.City);

        for (var i = 0; i < 4; i++)
        {
            var more = new CustomerProfile { Name = $"客户{i}", Phone = UniquePhone() };
            more.Tags.Add(tag);
            await _client.CreateCustomerAsync(new CreateCustomerRequest { Profile = more });
        }
        var seen = new List<string>();
        var pages = 0;
        var request = new SearchCustomersRequest { Tag = tag, PageSize = 2 };
        do
        {
            var page = await _client.SearchCustomersAsync(request);
            pages++;
            seen.AddRange(page.Customers.Select(c => c.Profile.Name));
            request.PageToken = page.NextPageToken;
        } while (request.PageToken != "");
        Assert.Equal(3, pages);
        Assert.Equal(["李娜", "客户0", "客户1", "客户2", "客户3"], seen);

        var byPhone = await _client.SearchCustomersAsync(new SearchCustomersRequest { Phone = "+86 " + profile.Phone });
        Assert.Equal(created.Id, Assert.Single(byPhone.Customers).Id);
        var byName = await _client.SearchCustomersAsync(new SearchCustomersRequest { Name = "客户", Tag = tag });
        Assert.Equal(4, byName.Customers.Count);
    }

    [Fact]
    public async Task The_same_phone_written_differently_is_already_registered_to_the_first_customer()
    {
        var digits = UniquePhone();
        var first = await _client.CreateCustomerAsync(new CreateCustomerRequest { Profile = new CustomerProfile { Name = "王伟", Phone = digits } });
        var spaced = $"+86 {digits[..3]} {digits[3..7]} {digits[7..]}";

        var ex = await Rpc.FailsWith(StatusCode.AlreadyExists, () =>
            _client.CreateCustomerAsync(new CreateCustomerRequest { Profile = new CustomerProfile { Name = "王伟二", Phone = spaced } }).ResponseAsync);

        Assert.Equal(first.Id, ex.Resource()!.ResourceName);
        Assert.Equal(1, await suite.CustomerDb.OpenConnection().ExecuteScalarAsync<int>(
            "SELECT count(*) FROM customers WHERE phone = @p", new { p = "+86" + digits }));
    }

    [Fact]
    public async Task A_retried_create_with_the_same_request_id_returns_the_first_customer()
    {
        var request = new CreateCustomerRequest
        {
            RequestId = Guid.NewGuid().ToString(), Profile = new CustomerProfile { Name = "张敏", Phone = UniquePhone() },
        };
        var first = await _client.CreateCustomerAsync(request);
        var retry = await _client.CreateCustomerAsync(request);
        Assert.Equal(first, retry);
    }

    [Fact]
    public async Task Bad_profiles_get_field_violations_and_write_nothing()
    {
        var before = await CountAsync();

        var missing = await Rpc.FailsWith(StatusCode.InvalidArgument, () =>
            _client.CreateCustomerAsync(new CreateCustomerRequest { Profile = new CustomerProfile { Name = "无电话" } }).ResponseAsync);
        Assert.Equal(["profile.phone"], missing.Fields());

        var malformed = await Rpc.FailsWith(StatusCode.InvalidArgument, () =>
            _client.CreateCustomerAsync(new CreateCustomerRequest
            {
                Profile = new CustomerProfile { Name = "", Phone = "12345", Email = "nope" },
            }).ResponseAsync);
        Assert.Equal(["profile.email", "profile.name", "profile.phone"], malformed.Fields());

        var badId = await Rpc.FailsWith(StatusCode.InvalidArgument, () => _client.GetCustomerAsync(new GetCustomerRequest { Id = "42" }).ResponseAsync);
        Assert.Equal(["id"], badId.Fields());

        var unknown = Guid.NewGuid().ToString();
        var notFound = await Rpc.FailsWith(StatusCode.NotFound, () => _client.GetCustomerAsync(new GetCustomerRequest { Id = unknown }).ResponseAsync);
        Assert.Equal(("customer", unknown), (notFound.Resource()!.ResourceType, notFound.Resource()!.ResourceName));

        var badMask = await Rpc.FailsWith(StatusCode.InvalidArgument, () => _client.UpdateCustomerAsync(new UpdateCustomerRequest
        {
            Id = unknown, Version = 1, UpdateMask = new FieldMask { Paths = { "shoe_size" } },
        }).ResponseAsync);
        Assert.Equal(["update_mask"], badMask.Fields());

        Assert.Equal(before, await CountAsync());
    }

    private async Task<(long Customers, long Outbox)> CountAsync()
    {
        await using var connection = await suite.CustomerDb.OpenConnectionAsync();
        return (await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM customers"),
                await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM change_events"));
    }
}
