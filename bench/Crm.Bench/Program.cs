using System.Diagnostics;
using Grpc.Core.Interceptors;
using Crm.Bench;
using Crm.Bench.V1;
using Crm.Common.V1;
using Crm.Customer.V1;
using Crm.Launcher;
using Crm.Loyalty.V1;
using Google.Protobuf.WellKnownTypes;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using Npgsql;

if (args.Length > 0 && args[0] == "compare-telemetry") return TelemetryComparison.Run(args[1..]);

Options options;
try { options = Options.Parse(args); }
catch (ArgumentException e) { Console.Error.WriteLine(e.Message); return 2; }

using var cts = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; Log("Interrupted: stopping."); cts.Cancel(); };
var ct = cts.Token;

var root = BenchHost.FindRepoRoot();
var resultsPath = Path.GetFullPath(options.Results ?? Path.Combine(root, "bench", "RESULTS.md"));
var outDirectory = Path.GetFullPath(options.OutDirectory ?? Path.Combine(root, "bench", "out"));
var runId = DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", System.Globalization.CultureInfo.InvariantCulture);
var dataDirectory = Path.Combine(Path.GetTempPath(), "crm-bench-" + Guid.NewGuid().ToString("N")[..10]);
var warmup = TimeSpan.FromSeconds(options.WarmupSeconds);
var duration = TimeSpan.FromSeconds(options.DurationSeconds);
var pgSeconds = (int)Math.Round(options.DurationSeconds);
var pgWarmup = Math.Max(1, (int)Math.Round(options.WarmupSeconds));
var cpu = new CpuMeter();
var total = Stopwatch.StartNew();

using var loggerFactory = LoggerFactory.Create(b => b.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning));
var report = new BenchReport
{
    RunId = runId, Options = options, Machine = MachineInfo.Collect(root),
    AnalysisFile = Path.Combine(root, "bench", "NOTES.md"),
};

Infrastructure? infra = null;
WebApplication? service = null;
WebApplication? loyalty = null;
EchoServer? echo = null;
OtlpSink? sink = null;
var customerCalls = new CallCounter();
var channels = new List<GrpcChannel>();
var exitCode = 0;
try
{
    Log($"Starting Postgres, Redis and RabbitMQ (durable) in {dataDirectory}");
    infra = await Infrastructure.StartAsync(new InfrastructureOptions
    {
        DataDirectory = dataDirectory,
        DeleteDataOnDispose = true,
        Durable = true,
        Databases = ["customerdb", "loyaltydb", "pgbench"],
    }, loggerFactory.CreateLogger("infrastructure"), ct);
    var postgres = infra.Postgres!;
    report.Machine.Postgres = await BenchHost.PostgresSettingsAsync(postgres.AdminConnectionString, ct);

    if (options.Telemetry)
    {
        sink = await OtlpSink.StartAsync(root, dataDirectory, ct);
        Log($"Telemetry on: the services export to the dashboard's OTLP receiver (Crm.AppHost otlp-sink) at {sink.GrpcEndpoint}");
    }

    var servicePort = BenchHost.FreePort();
    Log($"Starting the customer service in-process on 127.0.0.1:{servicePort} (HTTP/2, log level {options.ServiceLogLevel})");
    service = Crm.Customer.CustomerApp.Build(
    [
        $"--ConnectionStrings:customerdb={postgres.ConnectionString("customerdb")}{(options.DbExtra is null ? "" : ";" + options.DbExtra)}",
        $"--ConnectionStrings:cache={infra.Redis!.ConnectionString}",
        $"--ConnectionStrings:messaging={infra.RabbitMq!.AmqpUri}",
        $"--Kestrel:Endpoints:http:Url=http://127.0.0.1:{servicePort}",
        "--Kestrel:Endpoints:http:Protocols=Http2",
        "--OTEL_SERVICE_NAME=customer",
        $"--Logging:LogLevel:Default={options.ServiceLogLevel}",
        .. BenchAuth.ServiceArgs,
        .. sink?.ServiceArgs ?? [],
        .. options.ServiceArgs,
    ]);
    await service.StartAsync(ct);
    var serviceAddress = new Uri($"http://127.0.0.1:{servicePort}");
    var customerClients = Channels(serviceAddress).Select(c => new CustomerService.CustomerServiceClient(c.Intercept(customerCalls).Intercept(new UntracedClient()))).ToArray();

    Log($"Seeding {options.Customers:N0} customers with COPY");
    var seedWatch = Stopwatch.StartNew();
    var ids = await Seeder.SeedCustomersAsync(postgres.ConnectionString("customerdb"), options.Customers, ct);
    var idStrings = ids.Select(i => i.ToString()).ToArray();
    var sample = await customerClients[0].GetCustomerAsync(new GetCustomerRequest { Id = idStrings[^1] }, cancellationToken: ct);
    if (sample.Id != idStrings[^1]) throw new InvalidOperationException("GetCustomer did not return the seeded customer.");
    Log($"Seeded in {seedWatch.Elapsed.TotalSeconds:0.0} s; GetCustomer returns seeded rows ({sample.CalculateSize()} bytes each)");

    var pgbench = new Pgbench(postgres, "pgbench", dataDirectory);
    if (options.Phases.Contains("pgbench-select") || options.Phases.Contains("pgbench-tpcb"))
    {
        Log($"pgbench -i -s {options.PgbenchScale}");
        await pgbench.InitializeAsync(options.PgbenchScale, ct);
    }

    var clients = options.Clients;
    var threads = Math.Min(options.PgbenchThreads, clients);

    // The bare echo, then the same echo behind the services' authentication, rate limiter and role check.
    async Task<LoadResult> EchoPhaseAsync(string phase, string name, bool secured, string description)
    {
        await QuietAsync(phase);
        echo = await EchoServer.StartAsync(BenchHost.FreePort(), secured);
        var echoClients = Channels(echo.Address).Select(c => new EchoService.EchoServiceClient(c.Intercept(new UntracedClient()))).ToArray();
        Log($"{description}, {clients} clients, {options.WarmupSeconds} s warm-up + {options.DurationSeconds} s");
        var result = await ClosedLoop.RunAsync(name, clients, options.Connections, warmup, duration, i =>
        {
            var client = echoClients[i % echoClients.Length];
            var request = new EchoMessage { Text = idStrings[i % idStrings.Length] };
            return async () => await client.EchoAsync(request, deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: ct);
        }, cpu, ct);
        Log(Summary(result));
        await echo.DisposeAsync();
        echo = null;
        return result;
    }
    if (options.Phases.Contains("echo"))
        report.Echo = await EchoPhaseAsync("echo", "Echo", secured: false, "Ceiling for the RPC stack: bare gRPC echo");
    if (options.Phases.Contains("echo-auth"))
    {
        report.EchoAuth = await EchoPhaseAsync("echo-auth", "Echo with auth", secured: true,
            "The same echo behind the services' authentication, rate limiter and role check");
        // The bare echo again, after the secured one: the first phase also pays for tiering up the RPC stack's code, which
        // made the pipeline look free. The cheaper of the two bare runs is the baseline, so the pipeline's cost is not understated.
        if (report.Echo is { } first)
        {
            var again = await EchoPhaseAsync("echo", "Echo", secured: false, "The bare gRPC echo again, after the secured one");
            if (again.Cpu.BenchSeconds / again.Calls < first.Cpu.BenchSeconds / first.Calls) report.Echo = again;
        }
    }

    if (options.Phases.Contains("pgbench-select"))
    {
        Log($"Ceiling for reads: pgbench -S -c {clients} -j {threads} -T {pgSeconds} (after a {pgWarmup} s warm-up run)");
        await QuietAsync("pgbench -S");
        await pgbench.WarmUpAsync(["-S"], clients, threads, pgWarmup, ct);
        report.PgbenchSelect = await pgbench.RunAsync("select-only", ["-S"], clients, threads, pgSeconds, cpu, ct);
        Log(Summary(report.PgbenchSelect));
    }

    if (options.Phases.Contains("get"))
    {
        Log($"GetCustomer: {clients} clients on random seeded ids, {options.WarmupSeconds} s warm-up + {options.DurationSeconds} s");
        await QuietAsync("GetCustomer");
        report.GetCustomer = await ClosedLoop.RunAsync("GetCustomer", clients, options.Connections, warmup, duration, i =>
        {
            var client = customerClients[i % customerClients.Length];
            var random = new Random(i);
            return async () => await client.GetCustomerAsync(new GetCustomerRequest { Id = idStrings[random.Next(idStrings.Length)] },
                deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: ct);
        }, cpu, ct);
        Log(Summary(report.GetCustomer));
    }

    if (options.Phases.Contains("pgbench-tpcb"))
    {
        Log($"Ceiling for writes: pgbench (TPC-B) -c {clients} -j {threads} -T {pgSeconds} (after a {pgWarmup} s warm-up run)");
        await QuietAsync("pgbench TPC-B");
        await pgbench.WarmUpAsync([], clients, threads, pgWarmup, ct);
        report.PgbenchTpcb = await pgbench.RunAsync("tpc-b", [], clients, threads, pgSeconds, cpu, ct);
        Log(Summary(report.PgbenchTpcb));
    }

    await using var customerDb = NpgsqlDataSource.Create(postgres.ConnectionString("customerdb"));
    if (options.Phases.Contains("record"))
    {
        Log($"RecordOrder: {clients} clients, unique external ids, {options.WarmupSeconds} s warm-up + {options.DurationSeconds} s");
        await QuietAsync("RecordOrder");
        report.RecordOrder = await ClosedLoop.RunAsync("RecordOrder", clients, options.Connections, warmup, duration, i =>
        {
            var client = customerClients[i % customerClients.Length];
            var random = new Random(1000 + i);
            var n = 0;
            return async () => await client.RecordOrderAsync(
                Order(idStrings[random.Next(idStrings.Length)], $"bench-{runId}-{i}-{n++}"),
                deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: ct);
        }, cpu, ct);
        Log(Summary(report.RecordOrder));

        // What the closed loop left for the relay: how big, and how fast it drains (the relay's own rate).
        var backlog = await UnsentAsync(customerDb, ct);
        var drainWatch = Stopwatch.StartNew();
        var left = backlog;
        while (left > 0 && drainWatch.Elapsed < TimeSpan.FromSeconds(120))
        {
            await Task.Delay(50, ct);
            left = await UnsentAsync(customerDb, ct);
        }
        report.OutboxDrain = new OutboxDrain(backlog, drainWatch.Elapsed.TotalSeconds, left,
            await ScalarAsync(customerDb, "SELECT count(*) FROM change_events", ct));
        Log($"Outbox backlog after the RecordOrder phase: {backlog:N0} rows, drained in {drainWatch.Elapsed.TotalSeconds:0.00} s ({left} left)");
    }

    if (options.Phases.Contains("lag"))
    {
        var left = await UnsentAsync(customerDb, ct);
        if (left > 0) throw new InvalidOperationException($"The outbox still holds {left} unsent rows; the lag figure would be wrong.");
        var prefix = $"lag-{runId}-";
        await using var probe = await EventLagProbe.StartAsync(infra.RabbitMq.AmqpUri, "Crm.Contracts:OrderPaid", prefix, ct);
        await Task.Delay(500, ct); // binding in place, consumer registered
        Log($"Event lag: RecordOrder paced at {options.LagRate}/s for {options.LagSeconds} s (open loop), consumer on its own queue");
        var client = customerClients[0];
        var random = new Random(7);
        await QuietAsync("event lag");
        var before = cpu.Snapshot();
        var (calls, sendSeconds, firstError) = await OpenLoop.RunAsync(options.LagRate, TimeSpan.FromSeconds(options.LagSeconds),
            i => client.RecordOrderAsync(Order(idStrings[random.Next(idStrings.Length)], prefix + i),
                deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: ct).ResponseAsync, ct);
        var ok = calls.Count(c => c.Ok);
        var waitWatch = Stopwatch.StartNew();
        while (probe.Count < ok && waitWatch.Elapsed < TimeSpan.FromSeconds(options.LagWaitSeconds))
            await Task.Delay(20, ct);
        var usage = cpu.Snapshot() - before;
        report.EventLag = EventLagAnalysis.Analyse(options.LagRate, calls, sendSeconds, probe, prefix, waitWatch.Elapsed.TotalSeconds, usage, firstError);
        Log(Summary(report.EventLag));
    }

    if (options.Phases.Contains("earn") || options.Phases.Contains("redeem"))
    {
        // Started only now, so the earlier phases measure the customer service alone (OrderPaid has no loyalty
        // queue to go to before this point); configured like the customer service and like the tests.
        var loyaltyPort = BenchHost.FreePort();
        Log($"Starting the loyalty service in-process on 127.0.0.1:{loyaltyPort}");
        loyalty = Crm.Loyalty.LoyaltyApp.Build(
        [
            $"--ConnectionStrings:loyaltydb={postgres.ConnectionString("loyaltydb")}{(options.DbExtra is null ? "" : ";" + options.DbExtra)}",
            $"--ConnectionStrings:cache={infra.Redis!.ConnectionString}",
            $"--ConnectionStrings:messaging={infra.RabbitMq!.AmqpUri}",
            $"--Kestrel:Endpoints:http:Url=http://127.0.0.1:{loyaltyPort}",
            "--Kestrel:Endpoints:http:Protocols=Http2",
            "--OTEL_SERVICE_NAME=loyalty",
            $"--Logging:LogLevel:Default={options.ServiceLogLevel}",
            .. BenchAuth.ServiceArgs,
            .. sink?.ServiceArgs ?? [],
            .. options.ServiceArgs,
        ]);
        await loyalty.StartAsync(ct);
        var loyaltyClients = Channels(new Uri($"http://127.0.0.1:{loyaltyPort}")).Select(c => new LoyaltyService.LoyaltyServiceClient(c.Intercept(new UntracedClient()))).ToArray();
        await using var loyaltyDb = NpgsqlDataSource.Create(postgres.ConnectionString("loyaltydb"));

        // The consumer is up when an order recorded now earns (its queue and binding exist); keep recording in small
        // batches for the warm-up time so both services' earning paths are compiled before the phase.
        var warmWatch = Stopwatch.StartNew();
        var warmTarget = 0L;
        while (warmWatch.Elapsed < TimeSpan.FromSeconds(60))
        {
            await Task.WhenAll(Enumerable.Range(0, 20).Select(i => customerClients[0].RecordOrderAsync(
                Order(idStrings[(int)((warmTarget + i) % idStrings.Length)], $"earn-warm-{runId}-{warmTarget + i}"), cancellationToken: ct).ResponseAsync));
            warmTarget += 20;
            await Task.Delay(100, ct);
            if (warmWatch.Elapsed >= warmup && await EarnPhase.CountAsync(loyaltyDb, ct) > 0) break;
        }
        var settle = Stopwatch.StartNew();
        while (await UnsentAsync(customerDb, ct) > 0 && settle.Elapsed < TimeSpan.FromSeconds(30)) await Task.Delay(50, ct);
        long earnedSoFar = -1, now;
        while ((now = await EarnPhase.CountAsync(loyaltyDb, ct)) != earnedSoFar && settle.Elapsed < TimeSpan.FromSeconds(30))
        {
            earnedSoFar = now;
            await Task.Delay(300, ct);
        }
        Log($"Loyalty consumer earning: {now} of {warmTarget} warm-up orders earned ({warmWatch.Elapsed.TotalSeconds:0.0} s)");

        if (options.Phases.Contains("earn"))
        {
            Log($"Earn: RecordOrder with {clients} clients for {options.DurationSeconds} s (closed loop), then until the loyalty ledger has every order");
            await QuietAsync("earn");
            report.Earn = await EarnPhase.RunAsync(clients, duration, options.EarnWaitSeconds, i =>
            {
                var client = customerClients[i % customerClients.Length];
                var random = new Random(2000 + i);
                var n = 0;
                return async () => (await client.RecordOrderAsync(
                    Order(idStrings[random.Next(idStrings.Length)], $"earn-{runId}-{i}-{n++}"),
                    deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: ct)).Id;
            }, loyaltyDb, cpu, ct);
            Log(Summary(report.Earn));
        }

        if (options.Phases.Contains("redeem"))
        {
            var members = idStrings.Take(Math.Min(options.RedeemMembers, idStrings.Length)).ToArray();
            var rewards = Enumerable.Range(0, options.RedeemRewards).Select(i => $"bench-goods-{i}").ToArray();
            const long grant = 1_000_000;
            foreach (var id in rewards)
                await loyaltyClients[0].UpsertRewardAsync(new UpsertRewardRequest
                {
                    Reward = new Reward { Id = id, Name = $"Bench goods {id}", Kind = RewardKind.Goods, PointsCost = 1, Stock = -1, Active = true },
                }, cancellationToken: ct);
            await Parallel.ForEachAsync(members.Select((m, i) => (m, i)), new ParallelOptions { MaxDegreeOfParallelism = clients, CancellationToken = ct },
                async (x, token) => await loyaltyClients[0].AdjustPointsAsync(new AdjustPointsRequest
                {
                    CustomerId = x.m, Points = grant, Reason = "bench redeem phase", IdempotencyKey = $"bench-grant-{runId}-{x.i}",
                }, cancellationToken: token));
            report.RedeemSetup = $"{members.Length:N0} members (seeded customers) granted {grant:N0} points each with AdjustPoints; " +
                                 $"{rewards.Length} goods rewards (`{rewards[0]}`…, points_cost 1, stock -1 unlimited, active), each call one random member " +
                                 "and one random reward, quantity 1, a fresh idempotency key";
            Log($"Redeem: {clients} clients, {report.RedeemSetup}; {options.WarmupSeconds} s warm-up + {options.DurationSeconds} s");
            await QuietAsync("Redeem");
            report.Redeem = await ClosedLoop.RunAsync("Redeem", clients, options.Connections, warmup, duration, i =>
            {
                var client = loyaltyClients[i % loyaltyClients.Length];
                var random = new Random(3000 + i);
                var n = 0;
                return async () => await client.RedeemAsync(new RedeemRequest
                {
                    CustomerId = members[random.Next(members.Length)], RewardId = rewards[random.Next(rewards.Length)], Quantity = 1,
                    IdempotencyKey = $"redeem-{runId}-{i}-{n++}",
                }, deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: ct);
            }, cpu, ct);
            Log(Summary(report.Redeem));
        }
    }
    if (sink is not null)
    {
        Log("Telemetry: waiting for the exporters to flush, then reading the receiver's counters");
        report.Telemetry = await sink.SettleAsync(customerCalls.Calls, ct);
        Log($"  {report.Telemetry.CustomerCalls:N0} calls to the customer service, {report.Telemetry.CustomerServerSpans:N0} server spans received, " +
            $"{report.Telemetry.Sink.SpansReceived:N0} spans in all ({report.Telemetry.Sink.SpansEvicted:N0} evicted by the store's limit)");
    }
}
catch (OperationCanceledException) when (ct.IsCancellationRequested)
{
    report.Failure = "Interrupted before the end.";
    exitCode = 130;
}
catch (Exception e)
{
    report.Failure = e.ToString();
    Console.Error.WriteLine(e);
    exitCode = 1;
}
finally
{
    Log("Stopping the service and the infrastructure");
    foreach (var channel in channels) channel.Dispose();
    if (echo is not null) await echo.DisposeAsync();
    await BenchHost.StopAsync(loyalty, "the loyalty service");
    await BenchHost.StopAsync(service, "the service");
    if (sink is not null) await sink.DisposeAsync();
    if (infra is not null) await infra.DisposeAsync();
    report.LeftoverProcesses = BenchHost.LeftoverProcesses(dataDirectory);
}

report.TotalSeconds = total.Elapsed.TotalSeconds;
var json = Report.Json(report);
await ResultsText.SaveAsync(Report.Markdown(report), json, Path.Combine(outDirectory, $"bench-{runId}.json"), resultsPath, options.WriteResults, exitCode == 0);
await File.WriteAllTextAsync(Path.Combine(outDirectory, "latest.json"), json);
return exitCode;

GrpcChannel[] Channels(Uri address)
{
    // One channel per HTTP/2 connection; clients are spread over them round-robin.
    var made = BenchHost.Channels(address, options.Connections);
    channels.AddRange(made);
    return made;
}

async Task QuietAsync(string phase)
{
    if (options.QuietWaitSeconds <= 0) return;
    var (waited, other) = await Quiet.WaitAsync(cpu, TimeSpan.FromSeconds(options.QuietWaitSeconds), 0.15, ct);
    var line = $"{phase}: other processes used {other:0.00} cores in the last second before it (waited {waited:0} s for < 0.15)";
    report.Background.Add(line);
    if (other >= 0.15) Log("  machine busy with other work: " + line);
}

static RecordOrderRequest Order(string customerId, string externalOrderId)
{
    var request = new RecordOrderRequest
    {
        CustomerId = customerId,
        ExternalOrderId = externalOrderId,
        StoreId = "SZ-001",
        Channel = "store",
        AmountPaid = new Money { Amount = "1999.00" },
        PaymentMethod = "card",
        PaidAt = Timestamp.FromDateTime(DateTime.UtcNow),
    };
    request.Lines.Add(new OrderLine { Sku = "RING-18K-001", ProductName = "18K ring", Quantity = 1, UnitPrice = new Money { Amount = "1999.00" } });
    return request;
}

static async Task<long> UnsentAsync(NpgsqlDataSource db, CancellationToken ct) =>
    await ScalarAsync(db, "SELECT count(*) FROM outbox_messages WHERE dead_at IS NULL", ct);

static async Task<long> ScalarAsync(NpgsqlDataSource db, string sql, CancellationToken ct)
{
    await using var command = db.CreateCommand(sql);
    return Convert.ToInt64(await command.ExecuteScalarAsync(ct), System.Globalization.CultureInfo.InvariantCulture);
}

static string Summary(object result) => result switch
{
    LoadResult r => $"  {r.Name}: {r.Throughput:N0} calls/s, p50 {r.Latency.P50:0.00} ms, p99 {r.Latency.P99:0.00} ms, errors {r.Errors}, " +
                    $"busy cores {r.Cpu.BusyCores:0.00}" + (r.FirstError is null ? "" : $", first error: {r.FirstError}"),
    PgbenchResult p => $"  {p.Name}: {p.Tps:N0} tps, p50 {p.Latency.P50:0.00} ms, p99 {p.Latency.P99:0.00} ms, failed {p.Failed}, busy cores {p.Cpu.BusyCores:0.00}",
    EventLagResult l => $"  lag: sent {l.Sent} at {l.AchievedRate:0} /s, received {l.Received}, p50 {l.LagFromReturn.P50:0.0} ms, " +
                        $"p99 {l.LagFromReturn.P99:0.0} ms, max {l.LagFromReturn.Max:0.0} ms (from call start: p99 {l.LagFromCallStart.P99:0.0} ms)",
    EarnResult e => $"  earn: {e.OrdersSent:N0} orders sent ({e.RecordOrderRate:N0} /s, {e.SendErrors} errors), {e.OrdersEarned:N0} earned; " +
                    $"{e.EarnRate:N0} earned/s end to end over {e.EndToEndSeconds:0.0} s (during the send window {e.EarnedDuringSend:N0} /s, drained in {e.DrainSeconds:0.0} s); " +
                    $"lag p50 {e.LagFromReturn.P50:0.0} ms, p99 {e.LagFromReturn.P99:0.0} ms" + (e.FirstError is null ? "" : $", first error: {e.FirstError}"),
    _ => result.ToString() ?? "",
};

static void Log(string message) => BenchHost.Log(message);
