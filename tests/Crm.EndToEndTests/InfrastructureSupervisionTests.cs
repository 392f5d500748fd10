using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Crm.Loyalty.V1;
using Xunit;
using Xunit.Abstractions;

namespace Crm.EndToEndTests;

/// <summary>
/// One AppHost for the infrastructure-supervision tests; each test uses its own customers. It runs
/// the way <c>./crm run</c> runs it, owned by another process (<c>AppHost:OwnerPid</c>, there the pid of
/// <c>dotnet run</c>, here a <c>sleep</c>): the teardown SIGKILLs the owner and requires the AppHost to
/// stop everything and exit 0 by itself, so a killed <c>dotnet run</c> never leaves the suite running.
/// </summary>
public sealed class SuiteFixture : IAsyncLifetime
{
    private Process? _owner;

    internal AppHostRun AppHost { get; private set; } = null!;
    internal Suite Suite { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        _owner = Process.Start(new ProcessStartInfo("sleep", "3600") { RedirectStandardInput = true })!;
        // Durable: with synchronous_commit off (the ephemeral default) a SIGKILLed postmaster loses its
        // last acknowledged commits, which no supervisor can bring back.
        AppHost = await AppHostRun.StartAsync(arguments: ["--AppHost:Durable=true", $"--AppHost:OwnerPid={_owner.Id}"]);
        Suite = await Suite.ConnectAsync(AppHost);
    }

    public async Task DisposeAsync()
    {
        Suite?.Dispose();
        try
        {
            if (AppHost is null) return;
            _owner!.Kill();
            await AppHost.Process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(40));
            if (AppHost.Process.ExitCode != 0) throw new InvalidOperationException($"The AppHost exited with {AppHost.Process.ExitCode} after its owner was killed");
            if (!AppHost.Lines.Any(l => l.Contains($"The owner process {_owner.Id} is gone: shutting down", StringComparison.Ordinal)))
                throw new InvalidOperationException("The AppHost did not say why it stopped");
            var left = TestSupport.ProcessesMentioning(AppHost.Folder).Concat(AppHost.SeenPids.Where(TestSupport.IsAlive).Select(pid => $"pid {pid}")).ToList();
            if (left.Count > 0) throw new InvalidOperationException("Left running after the owner was killed: " + string.Join(", ", left));
        }
        catch (TimeoutException)
        {
            throw new InvalidOperationException("The AppHost still runs 40 s after its owner process was killed:\n" + AppHost.Tail(40));
        }
        finally
        {
            if (AppHost is not null) await AppHost.DisposeAsync();
            if (_owner is { HasExited: false }) _owner.Kill();
            _owner?.Dispose();
        }
    }
}

/// <summary>
/// A server of the suite SIGKILLed in the middle of a stream of orders, through the AppHost as a user
/// runs it: the AppHost sees it within seconds, starts it again on the same port with the same data,
/// the services reconnect by themselves, and every order earns its points exactly once.
/// </summary>
[Collection(AppHostCollection.Name)]
public sealed class InfrastructureSupervisionTests(SuiteFixture fixture, ITestOutputHelper output) : IClassFixture<SuiteFixture>
{
    private const int Orders = 2_000;
    private const int Customers = 20;
    private const int Concurrency = 8;

    private AppHostRun AppHost => fixture.AppHost;

    [Fact]
    public async Task SIGKILLed_RabbitMQ_is_restarted_on_its_port_and_every_order_of_a_stream_earns_points_exactly_once()
    {
        var watch = await StreamOrdersAndKillAsync("messaging", async () =>
        {
            // All of the broker: the Erlang VM, its helpers (erl_child_setup, inet_gethost, ...) and its epmd.
            var beam = (await AppHost.ResourceAsync("messaging")).GetProperty("pid").GetInt32();
            var epmdPort = File.ReadAllText(Path.Combine(AppHost.Folder, "rabbitmq", "ports")).Split(' ')[2].Trim();
            var epmd = TestSupport.ProcessesMentioning($"epmd -port {epmdPort} ").Select(p => int.Parse(p.Split(':')[0], CultureInfo.InvariantCulture));
            var pids = TestSupport.DescendantsOf(beam).Prepend(beam).Concat(epmd).ToList();
            Assert.Contains("beam", TestSupport.CommandLine(beam));
            foreach (var pid in pids) TestSupport.Signal(pid, TestSupport.SIGKILL);
            return pids;
        });
        // The dashboard's health column says what /health says: loyalty's bus was seen not Healthy, with its reason.
        Assert.Contains(watch.ServiceHealthSeen, h => h.StartsWith("loyalty ", StringComparison.Ordinal) && !h.StartsWith("loyalty Healthy", StringComparison.Ordinal)
                                                      && h.Contains("masstransit", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public async Task SIGKILLed_Postgres_is_restarted_with_its_data_and_every_order_of_a_stream_earns_points_exactly_once()
    {
        await StreamOrdersAndKillAsync("postgres", async () =>
        {
            var postmaster = (await AppHost.ResourceAsync("postgres")).GetProperty("pid").GetInt32();
            Assert.Contains("postgres", TestSupport.CommandLine(postmaster));
            TestSupport.Signal(postmaster, TestSupport.SIGKILL);
            return [postmaster];
        });
    }

    private sealed record Watch(TimeSpan Detected, TimeSpan Back, List<string> ServiceHealthSeen);

    /// <summary>
    /// Streams <see cref="Orders"/> RecordOrder calls (<see cref="Concurrency"/> at a time, a failed call sent
    /// again with the same external order id), runs <paramref name="kill"/> after a quarter of them, watches
    /// the dashboard JSON until the server is back, then checks every customer's account and ledger.
    /// </summary>
    private async Task<Watch> StreamOrdersAndKillAsync(string server, Func<Task<List<int>>> kill)
    {
        try
        {
            var suite = fixture.Suite;
            var before = await AppHost.ResourceAsync(server);
            var endpointBefore = before.GetProperty("endpoints").ToString();
            var restartsBefore = before.GetProperty("restarts").GetInt32();

            var customers = await Task.WhenAll(Enumerable.Range(0, Customers).Select(i => suite.CreateCustomerAsync($"Stream {server} {i}")));
            var expected = customers.ToDictionary(c => c, _ => new ConcurrentDictionary<string, long>());
            var run = Guid.NewGuid().ToString("N")[..8];
            var done = 0;
            var failedAttempts = 0;
            Task<Watch>? watching = null;
            var stopwatch = Stopwatch.StartNew();
            await Parallel.ForEachAsync(Enumerable.Range(0, Orders), new ParallelOptions { MaxDegreeOfParallelism = Concurrency }, async (i, _) =>
            {
                var customer = customers[i % Customers];
                var amount = 100m + (i % 97) * 13 + 0.75m;
                var (order, failed) = await suite.RecordOrderAsync(customer, $"E2E-{run}-{i}", amount, TimeSpan.FromMinutes(2));
                Assert.True(expected[customer].TryAdd(order.Id, (long)decimal.Floor(amount)), $"order id {order.Id} returned twice");
                Interlocked.Add(ref failedAttempts, failed);
                if (Interlocked.Increment(ref done) == Orders / 4) watching = Task.Run(() => KillAndWatchAsync(server, restartsBefore, kill));
            });
            var streamed = stopwatch.Elapsed;
            output.WriteLine($"{Orders} RecordOrder calls ({Concurrency} at a time) in {streamed.TotalSeconds:0.0} s; {failedAttempts} failed attempts sent again");
            Assert.NotNull(watching);
            var watch = await watching;

            // Every order earns its points exactly once, with no manual step.
            stopwatch.Restart();
            foreach (var customer in customers)
            {
                var sum = expected[customer].Values.Sum();
                var account = await suite.WaitForAccountAsync(customer, a => a.Balance >= sum, TimeSpan.FromMinutes(3) - stopwatch.Elapsed);
                var earnings = (await suite.LedgerAsync(customer)).Where(e => e.Kind == EntryKind.Earn).ToList();
                var missing = expected[customer].Keys.Except(earnings.Select(e => e.SourceRef)).ToList();
                var stillKnown = 0;
                foreach (var id in missing)
                {
                    try { await suite.Customers.GetOrderAsync(new Crm.Customer.V1.GetOrderRequest { Id = id }, deadline: DateTime.UtcNow.AddSeconds(10)); stillKnown++; }
                    catch (Grpc.Core.RpcException) { }
                }
                Assert.True(account is not null && account.Balance == sum && account.GrowthValue == sum && missing.Count == 0,
                    $"customer {customer}: expected {sum} points from {expected[customer].Count} orders, account says {account}; " +
                    $"{missing.Count} orders earned nothing ({stillKnown} of them still known to the customer service): {string.Join(", ", missing.Take(5))}");
                Assert.Equal(expected[customer].Count, earnings.Count);
                Assert.Equal(expected[customer].Keys.Order(), earnings.Select(e => e.SourceRef).Order());
                Assert.All(earnings, e => Assert.Equal(expected[customer][e.SourceRef], e.Points));
            }
            output.WriteLine($"every order's points were in the accounts {(streamed + stopwatch.Elapsed).TotalSeconds:0.0} s after the stream began " +
                             $"({stopwatch.Elapsed.TotalSeconds:0.0} s after its last order)");

            var after = await AppHost.ResourceAsync(server);
            Assert.Equal(endpointBefore, after.GetProperty("endpoints").ToString()); // same port
            Assert.Equal(restartsBefore + 1, after.GetProperty("restarts").GetInt32());
            Assert.Equal("Running", after.GetProperty("state").GetString());
            Assert.Equal("Healthy", after.GetProperty("health").GetString());
            Assert.Contains(AppHost.Lines, l => l.Contains($"{server} (pid ", StringComparison.Ordinal) && l.Contains("is gone; starting it again on port", StringComparison.Ordinal));
            return watch;
        }
        catch
        {
            AppHost.WriteTail(output, 200);
            throw;
        }
    }

    /// <summary>Kills, then polls /api/resources every 100 ms: when the server is seen gone, when it runs healthy again, what the services' health said.</summary>
    private async Task<Watch> KillAndWatchAsync(string server, int restartsBefore, Func<Task<List<int>>> kill)
    {
        var pids = await kill();
        var stopwatch = Stopwatch.StartNew();
        TimeSpan? detected = null;
        var seen = new List<string>();
        while (stopwatch.Elapsed < TimeSpan.FromMinutes(2))
        {
            foreach (var r in await AppHost.ResourcesAsync())
            {
                var (name, state, health) = (r.GetProperty("name").GetString()!, r.GetProperty("state").GetString(), r.GetProperty("health").ToString());
                if (r.GetProperty("type").GetString() == "Project")
                {
                    var line = $"{name} {health}: {(r.TryGetProperty("healthDescription", out var why) ? why.ToString() : "")}";
                    if (!seen.Contains(line)) seen.Add(line);
                }
                if (name != server) continue;
                var restarts = r.GetProperty("restarts").GetInt32();
                if (detected is null && (state != "Running" || health != "Healthy" || restarts > restartsBefore)) detected = stopwatch.Elapsed;
                if (restarts > restartsBefore && state == "Running" && health == "Healthy")
                {
                    output.WriteLine($"SIGKILL {server} (pids {string.Join(' ', pids)}): seen by the AppHost after {detected?.TotalSeconds:0.0} s, " +
                                     $"running healthy on its port again after {stopwatch.Elapsed.TotalSeconds:0.0} s");
                    output.WriteLine("services' health seen meanwhile: " + string.Join(" | ", seen));
                    Assert.True(detected < TimeSpan.FromSeconds(5), $"{server} was seen gone only after {detected}");
                    return new Watch(detected!.Value, stopwatch.Elapsed, seen);
                }
            }
            await Task.Delay(100);
        }
        throw new TimeoutException($"{server} did not run healthy again within 2 minutes of its SIGKILL (seen gone after {detected})");
    }
}
