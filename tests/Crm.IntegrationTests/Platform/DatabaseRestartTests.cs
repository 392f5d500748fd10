using Crm.Customer.V1;
using Crm.IntegrationTests.Support;
using Dapper;
using Grpc.Core;
using Xunit.Abstractions;

namespace Crm.IntegrationTests.Platform;

/// <summary>What callers see when the database drops every session (a restart, a failover, an operator's terminate).</summary>
[Collection(SuiteCollection.Name)]
public class DatabaseRestartTests(SuiteFixture suite, ITestOutputHelper output)
{
    [Fact]
    public async Task After_the_database_ends_every_session_at_most_one_call_fails_and_it_fails_UNAVAILABLE()
    {
        // A customer service of its own (database customerrestartdb): ending its sessions disturbs no other test.
        await using var service = await ServiceHost.StartAsync(Crm.Customer.CustomerApp.Build, suite.Infrastructure, "customerrestart",
            "customerrestartdb", connectionName: "customerdb");
        var client = new CustomerService.CustomerServiceClient(service.Channel);
        var id = (await client.CreateCustomerAsync(new CreateCustomerRequest
        {
            Profile = new CustomerProfile { Name = "周杰", Phone = Customer.CustomerProfileTests.UniquePhone() },
        })).Id;

        // Calls at once until at least eight connections sit in the pool (on a busy machine one round of concurrent
        // calls may finish on fewer connections than calls).
        await using (var admin = await suite.CustomerDb.OpenConnectionAsync())
        {
            const string open = "SELECT count(*) FROM pg_stat_activity WHERE datname = 'customerrestartdb'";
            for (var round = 0; round < 50 && await admin.ExecuteScalarAsync<long>(open) < 8; round++)
                await Task.WhenAll(Enumerable.Range(0, 16).Select(_ => client.GetCustomerAsync(new GetCustomerRequest { Id = id }).ResponseAsync));
            var ended = await admin.ExecuteScalarAsync<long>(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = 'customerrestartdb'");
            output.WriteLine($"Sessions of customerrestartdb ended: {ended}");
            Assert.True(ended >= 8, $"only {ended} sessions were open; the pool was not filled");
        }

        var outcomes = new List<StatusCode>();
        for (var i = 0; i < 12; i++)
        {
            try
            {
                var customer = await client.GetCustomerAsync(new GetCustomerRequest { Id = id });
                Assert.Equal("周杰", customer.Profile.Name);
                outcomes.Add(StatusCode.OK);
            }
            catch (RpcException e)
            {
                outcomes.Add(e.StatusCode);
            }
        }
        output.WriteLine("GetCustomer after the sessions ended: " + string.Join(", ", outcomes));
        Assert.All(outcomes.Where(o => o != StatusCode.OK), o => Assert.Equal(StatusCode.Unavailable, o));
        Assert.True(outcomes.Count(o => o != StatusCode.OK) <= 1, "more than one call failed: " + string.Join(", ", outcomes));
        Assert.All(outcomes.Skip(1), o => Assert.Equal(StatusCode.OK, o));
    }
}
