using System.Diagnostics;
using System.Text.Json;
using Crm.Customer.V1;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Xunit;
using Xunit.Abstractions;

namespace Crm.EndToEndTests;

/// <summary>
/// The whole suite as an operator runs it: the built AppHost in its own process, with a throw-away
/// data folder and a dashboard on a free port.
/// </summary>
[Collection(AppHostCollection.Name)]
public sealed class AppHostTests(ITestOutputHelper output)
{
    [Fact]
    public async Task AppHost_runs_the_suite_an_order_earns_points_killed_services_and_wrappers_are_restarted_and_SIGINT_stops_cleanly()
    {
        var stopwatch = Stopwatch.StartNew();
        await using var appHost = await AppHostRun.StartAsync();
        try
        {
            // 1. Ready.
            output.WriteLine($"ready after {appHost.StartTime.TotalSeconds:0.0} s");

            // 2. The customer service answers gRPC: health, then a write and a read.
            var customer = await appHost.ResourceAsync("customer");
            var grpcUrl = await appHost.GrpcUrlAsync("customer");
            // Every RPC needs a token (health excepted): without one the call is UNAUTHENTICATED.
            using (var anonymous = GrpcChannel.ForAddress(grpcUrl))
            {
                var denied = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() => new CustomerService.CustomerServiceClient(anonymous)
                    .GetCustomerAsync(new GetCustomerRequest { Id = Guid.NewGuid().ToString() }, deadline: DateTime.UtcNow.AddSeconds(10)).ResponseAsync);
                Assert.Equal(Grpc.Core.StatusCode.Unauthenticated, denied.StatusCode);
            }
            using var suite = await Suite.ConnectAsync(appHost);
            using var channel = CrmToken.Channel(grpcUrl, await CrmToken.GetAsync(appHost.Folder, "admin"));
            // The suite's addresses for tools (./crm import finds the customer service there): written before "ready".
            using (var addresses = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(appHost.Folder, "addresses.json"))))
            {
                Assert.Equal(appHost.Process.Id, addresses.RootElement.GetProperty("pid").GetInt32());
                Assert.Equal(grpcUrl, addresses.RootElement.GetProperty("services").GetProperty("customer").GetProperty("grpc").GetString());
            }
            await AssertServingAsync(channel);
            var client = suite.Customers;
            var created = await client.CreateCustomerAsync(new CreateCustomerRequest
            {
                Profile = new CustomerProfile { Name = "Lin Yue", Phone = "13800138000", Email = "Lin.Yue@Example.com", SourceChannel = "store" },
                RequestId = Guid.NewGuid().ToString(),
            }, deadline: DateTime.UtcNow.AddSeconds(30));
            Assert.False(string.IsNullOrEmpty(created.Id));
            var read = await client.GetCustomerAsync(new GetCustomerRequest { Id = created.Id }, deadline: DateTime.UtcNow.AddSeconds(10));
            Assert.Equal("Lin Yue", read.Profile.Name);
            Assert.Equal("+8613800138000", read.Profile.Phone);

            // 3. Order → event → points, through RabbitMQ and the loyalty service: 10,000.50 yuan paid
            //    earns exactly 10,000 points and as much growth value, which is tier S2 (8,001-80,000).
            stopwatch.Restart();
            var (order, _) = await suite.RecordOrderAsync(created.Id, "ERP-" + Guid.NewGuid().ToString("N")[..12], 10_000.50m, TimeSpan.FromSeconds(30));
            var account = await suite.WaitForAccountAsync(created.Id, a => a.Balance != 0, TimeSpan.FromSeconds(60));
            Assert.NotNull(account);
            output.WriteLine($"points earned {stopwatch.Elapsed.TotalSeconds:0.0} s after RecordOrder");
            Assert.Equal(10_000, account.Balance);
            Assert.Equal(10_000, account.GrowthValue);
            Assert.Equal("S2", account.Tier.Code);
            var earned = Assert.Single(await suite.LedgerAsync(created.Id), e => e.Kind == Crm.Loyalty.V1.EntryKind.Earn);
            Assert.Equal(order.Id, earned.SourceRef);
            Assert.Equal(10_000, earned.Points);

            // 4. SIGKILL the service: the AppHost restarts it on the same ports.
            var killed = customer.GetProperty("pid").GetInt32();
            TestSupport.Signal(killed, TestSupport.SIGKILL);
            stopwatch.Restart();
            var restarted = await WaitForRestartAsync(appHost, "customer", 1);
            Assert.NotEqual(killed, restarted.GetProperty("pid").GetInt32());
            output.WriteLine($"customer healthy again {stopwatch.Elapsed.TotalSeconds:0.0} s after SIGKILL");
            Assert.Contains(appHost.Lines, l => l.Contains("customer exited with code 137; restarting in 1s (restart #1)", StringComparison.Ordinal));
            await appHost.RememberPidsAsync();
            await AssertServingAsync(channel);
            Assert.Equal(created.Id, (await client.GetCustomerAsync(new GetCustomerRequest { Id = created.Id })).Id);

            // 5. SIGKILL the loyalty service's supervising wrapper (its watchdog): the service must not
            //    keep running unsupervised; it stops, and the AppHost starts one new copy.
            var loyaltyPid = (await appHost.ResourceAsync("loyalty")).GetProperty("pid").GetInt32();
            var wrapper = TestSupport.ParentOf(loyaltyPid);
            Assert.Contains("crm-watchdog", TestSupport.CommandLine(wrapper));
            TestSupport.Signal(wrapper, TestSupport.SIGKILL);
            stopwatch.Restart();
            Assert.True(await TestSupport.EventuallyAsync(() => !TestSupport.IsAlive(loyaltyPid), TimeSpan.FromSeconds(15)),
                $"loyalty (pid {loyaltyPid}) still runs 15 s after its wrapper was SIGKILLed");
            output.WriteLine($"loyalty gone {stopwatch.Elapsed.TotalSeconds:0.0} s after its wrapper was SIGKILLed");
            var newLoyalty = await WaitForRestartAsync(appHost, "loyalty", 1);
            output.WriteLine($"loyalty healthy again {stopwatch.Elapsed.TotalSeconds:0.0} s after its wrapper was SIGKILLed");
            Assert.Equal(appHost.Process.Id, TestSupport.ParentOf(TestSupport.ParentOf(newLoyalty.GetProperty("pid").GetInt32()))); // AppHost → watchdog → service
            await appHost.RememberPidsAsync();
            var account2 = await suite.Loyalty.GetAccountAsync(new Crm.Loyalty.V1.GetAccountRequest { CustomerId = created.Id }, deadline: DateTime.UtcNow.AddSeconds(10));
            Assert.Equal(10_000, account2.Balance);

            // 6. SIGINT: exit 0 within 30 s, nothing left behind, the throw-away folder gone.
            stopwatch.Restart();
            var code = await appHost.StopAsync();
            output.WriteLine($"exited {stopwatch.Elapsed.TotalSeconds:0.0} s after SIGINT with code {code}");
            Assert.Equal(0, code);
            Assert.Empty(TestSupport.ProcessesMentioning(appHost.Folder));
            Assert.DoesNotContain(appHost.SeenPids, TestSupport.IsAlive);
            Assert.False(Directory.Exists(appHost.Folder));
        }
        catch
        {
            appHost.WriteTail(output);
            throw;
        }
    }

    /// <summary>Waits (60 s) until the resource shows at least <paramref name="restarts"/> restarts and runs healthy again.</summary>
    internal static async Task<JsonElement> WaitForRestartAsync(AppHostRun appHost, string name, int restarts)
    {
        JsonElement resource = default;
        for (var deadline = DateTime.UtcNow.AddSeconds(60); DateTime.UtcNow < deadline; await Task.Delay(250))
        {
            resource = await appHost.ResourceAsync(name);
            if (resource.GetProperty("restarts").GetInt32() >= restarts && resource.GetProperty("state").GetString() == "Running"
                && resource.GetProperty("health").GetString() == "Healthy") return resource;
        }
        Assert.Fail($"{name} did not run healthy again after restart #{restarts}: {resource}");
        return resource;
    }

    private static async Task AssertServingAsync(GrpcChannel channel)
    {
        var health = new Health.HealthClient(channel);
        var reply = await health.CheckAsync(new HealthCheckRequest(), deadline: DateTime.UtcNow.AddSeconds(10));
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, reply.Status);
    }
}

/// <summary>The tests that run the whole AppHost, one at a time: on two cores, two suites at once would skew every timing.</summary>
[CollectionDefinition(Name)]
public sealed class AppHostCollection
{
    public const string Name = "AppHost";
}
