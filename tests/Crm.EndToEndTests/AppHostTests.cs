using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
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
public sealed class AppHostTests(ITestOutputHelper output)
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(10) };

    [Fact]
    public async Task AppHost_runs_the_suite_restarts_a_killed_service_and_stops_cleanly_on_SIGINT()
    {
        Assert.True(File.Exists(TestSupport.AppHostDll), $"{TestSupport.AppHostDll} is not built");
        var folder = Path.Combine(Path.GetTempPath(), "crm-e2e-" + Guid.NewGuid().ToString("N")[..8]);
        var lines = new ConcurrentQueue<string>();
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { TestSupport.AppHostDll, "--AppHost:Ephemeral=true", $"--AppHost:DataDirectory={folder}", "--AppHost:DashboardUrl=http://127.0.0.1:0" })
            info.ArgumentList.Add(a);

        var stopwatch = Stopwatch.StartNew();
        using var appHost = Process.Start(info)!;
        DataReceivedEventHandler collect = (_, e) =>
        {
            if (e.Data is null) return;
            lines.Enqueue(e.Data);
            if (e.Data == "Crm suite is ready.") ready.TrySetResult();
        };
        appHost.OutputDataReceived += collect;
        appHost.ErrorDataReceived += collect;
        appHost.BeginOutputReadLine();
        appHost.BeginErrorReadLine();
        var pids = new HashSet<int>();
        try
        {
            // 1. Ready within two minutes.
            var exited = appHost.WaitForExitAsync();
            if (await Task.WhenAny(ready.Task, exited, Task.Delay(TimeSpan.FromSeconds(120))) != ready.Task)
                Assert.Fail("The AppHost did not print 'Crm suite is ready.'");
            output.WriteLine($"ready after {stopwatch.Elapsed.TotalSeconds:0.0} s");
            var dashboard = lines.Select(l => Regex.Match(l, @"Dashboard: (http://\S+)")).First(m => m.Success).Groups[1].Value;

            // 2. The customer service answers gRPC: health, then a write and a read.
            var customer = await ResourceAsync(dashboard, "customer");
            var grpcUrl = customer.GetProperty("endpoints").GetProperty("http").GetString()!;
            pids.UnionWith(await AllPidsAsync(dashboard));
            // Every RPC needs a token (health excepted): get one as the README says, from the AppHost's development key.
            using (var anonymous = GrpcChannel.ForAddress(grpcUrl))
            {
                var denied = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() => new CustomerService.CustomerServiceClient(anonymous)
                    .GetCustomerAsync(new GetCustomerRequest { Id = Guid.NewGuid().ToString() }, deadline: DateTime.UtcNow.AddSeconds(10)).ResponseAsync);
                Assert.Equal(Grpc.Core.StatusCode.Unauthenticated, denied.StatusCode);
            }
            using var channel = CrmToken.Channel(grpcUrl, await CrmToken.GetAsync(folder, "admin"));
            await AssertServingAsync(channel);
            var client = new CustomerService.CustomerServiceClient(channel);
            var created = await client.CreateCustomerAsync(new CreateCustomerRequest
            {
                Profile = new CustomerProfile { Name = "Lin Yue", Phone = "13800138000", Email = "Lin.Yue@Example.com", SourceChannel = "store" },
                RequestId = Guid.NewGuid().ToString(),
            }, deadline: DateTime.UtcNow.AddSeconds(30));
            Assert.False(string.IsNullOrEmpty(created.Id));
            var read = await client.GetCustomerAsync(new GetCustomerRequest { Id = created.Id }, deadline: DateTime.UtcNow.AddSeconds(10));
            Assert.Equal("Lin Yue", read.Profile.Name);
            Assert.Equal("+8613800138000", read.Profile.Phone);

            // 3. SIGKILL the service: the AppHost restarts it on the same ports.
            var killed = customer.GetProperty("pid").GetInt32();
            TestSupport.Signal(killed, TestSupport.SIGKILL);
            stopwatch.Restart();
            JsonElement restarted = default;
            for (var deadline = DateTime.UtcNow.AddSeconds(60); DateTime.UtcNow < deadline; await Task.Delay(500))
            {
                restarted = await ResourceAsync(dashboard, "customer");
                if (restarted.GetProperty("restarts").GetInt32() >= 1 && restarted.GetProperty("state").GetString() == "Running"
                    && restarted.GetProperty("health").GetString() == "Healthy") break;
            }
            Assert.Equal("Healthy", restarted.GetProperty("health").GetString());
            Assert.NotEqual(killed, restarted.GetProperty("pid").GetInt32());
            output.WriteLine($"customer healthy again {stopwatch.Elapsed.TotalSeconds:0.0} s after SIGKILL");
            Assert.Contains(lines, l => l.Contains("customer exited with code 137; restarting in 1s (restart #1)", StringComparison.Ordinal));
            pids.UnionWith(await AllPidsAsync(dashboard));
            await AssertServingAsync(channel);
            Assert.Equal(created.Id, (await client.GetCustomerAsync(new GetCustomerRequest { Id = created.Id })).Id);

            // 4. SIGINT: exit 0 within 30 s, nothing left behind, the throw-away folder gone.
            stopwatch.Restart();
            TestSupport.Signal(appHost.Id, TestSupport.SIGINT);
            await appHost.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
            output.WriteLine($"exited {stopwatch.Elapsed.TotalSeconds:0.0} s after SIGINT with code {appHost.ExitCode}");
            Assert.Equal(0, appHost.ExitCode);
            Assert.Empty(TestSupport.ProcessesMentioning(folder));
            Assert.DoesNotContain(pids, TestSupport.IsAlive);
            Assert.False(Directory.Exists(folder));
        }
        catch
        {
            foreach (var line in lines.TakeLast(150)) output.WriteLine(line);
            throw;
        }
        finally
        {
            if (!appHost.HasExited) appHost.Kill(); // SIGKILL: the watchdogs stop its children
            await TestSupport.EventuallyAsync(() => TestSupport.ProcessesMentioning(folder).Count == 0 && !pids.Any(TestSupport.IsAlive), TimeSpan.FromSeconds(30));
            try { if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true); } catch (IOException) { }
        }
    }

    private static async Task AssertServingAsync(GrpcChannel channel)
    {
        var health = new Health.HealthClient(channel);
        var reply = await health.CheckAsync(new HealthCheckRequest(), deadline: DateTime.UtcNow.AddSeconds(10));
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, reply.Status);
    }

    private static async Task<JsonElement> ResourceAsync(string dashboard, string name)
    {
        var resources = await Http.GetFromJsonAsync<JsonElement>($"{dashboard}/api/resources");
        return resources.EnumerateArray().Single(r => r.GetProperty("name").GetString() == name);
    }

    private static async Task<IEnumerable<int>> AllPidsAsync(string dashboard)
    {
        var resources = await Http.GetFromJsonAsync<JsonElement>($"{dashboard}/api/resources");
        return resources.EnumerateArray().Where(r => r.GetProperty("pid").ValueKind == JsonValueKind.Number)
            .Select(r => r.GetProperty("pid").GetInt32()).ToList();
    }
}
