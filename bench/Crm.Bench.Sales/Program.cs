using System.Diagnostics;
using System.Globalization;
using Crm.Bench;
using Crm.Bench.Sales;
using Crm.Launcher;
using Crm.Sales;
using Crm.Sales.Opportunities;
using Crm.Sales.V1;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using Npgsql;

Options options;
try { options = Options.Parse(args); }
catch (ArgumentException e) { Console.Error.WriteLine(e.Message); return args.Contains("--help") || args.Contains("-h") ? 0 : 2; }

using var cts = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; Log("Interrupted: stopping."); cts.Cancel(); };
var ct = cts.Token;

var root = BenchHost.FindRepoRoot();
var resultsPath = Path.GetFullPath(options.Results ?? Path.Combine(root, "bench", "RESULTS-sales.md"));
var outDirectory = Path.GetFullPath(options.OutDirectory ?? Path.Combine(root, "bench", "out"));
var runId = DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture);
var dataDirectory = Path.Combine(Path.GetTempPath(), "crm-bench-" + Guid.NewGuid().ToString("N")[..10]);
var warmup = TimeSpan.FromSeconds(options.WarmupSeconds);
var duration = TimeSpan.FromSeconds(options.DurationSeconds);
var pgSeconds = Math.Max(1, (int)Math.Round(options.DurationSeconds));
var pgWarmup = Math.Max(1, (int)Math.Round(options.WarmupSeconds));
var cpu = new CpuMeter();
var total = Stopwatch.StartNew();
var pipeline = new Pipeline(SalesOptions.DefaultStages); // what the service runs with when Sales:Stages is not set

using var loggerFactory = LoggerFactory.Create(b => b.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning));
var report = new SalesBenchReport { RunId = runId, Options = options, Machine = MachineInfo.Collect(root) };

Infrastructure? infra = null;
WebApplication? service = null;
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
        Databases = ["salesdb", "pgbench"],
    }, loggerFactory.CreateLogger("infrastructure"), ct);
    var postgres = infra.Postgres!;
    report.Machine.Postgres = await BenchHost.PostgresSettingsAsync(postgres.AdminConnectionString, ct);

    var port = BenchHost.FreePort();
    Log($"Starting the sales service in-process on 127.0.0.1:{port} (HTTP/2, log level {options.ServiceLogLevel})");
    service = SalesApp.Build(
    [
        $"--ConnectionStrings:salesdb={postgres.ConnectionString("salesdb")}",
        $"--ConnectionStrings:cache={infra.Redis!.ConnectionString}",
        $"--ConnectionStrings:messaging={infra.RabbitMq!.AmqpUri}",
        // Not called here (no conversions, no paid deals): an address nobody listens on.
        $"--services:customer:http:0=http://127.0.0.1:{BenchHost.FreePort()}",
        $"--Kestrel:Endpoints:http:Url=http://127.0.0.1:{port}",
        "--Kestrel:Endpoints:http:Protocols=Http2",
        "--OTEL_SERVICE_NAME=sales",
        $"--Logging:LogLevel:Default={options.ServiceLogLevel}",
        .. BenchAuth.ServiceArgs,
        .. options.ServiceArgs,
    ]);
    await service.StartAsync(ct); // applies the migrations
    var made = BenchHost.Channels(new Uri($"http://127.0.0.1:{port}"), options.Connections);
    channels.AddRange(made);
    var clients = made.Select(c => new SalesService.SalesServiceClient(c)).ToArray();

    Log($"Seeding {options.Opportunities:N0} opportunities over {options.Owners} owners with {options.HistoryDays} days of stage history (COPY)");
    var seedWatch = Stopwatch.StartNew();
    var seed = Seeder.Generate(options, pipeline, DateTime.UtcNow);
    await Seeder.LoadAsync(postgres.ConnectionString("salesdb"), seed, ct);
    var check = await SeedCheck.RunAsync(clients[0], seed, pipeline, ct);
    report.Seed = new SeedSummary(seed.Count, seed.Sum(o => (long)o.History.Count), options.Owners, options.Teams,
        seed.GroupBy(o => o.Stage).OrderBy(g => pipeline.Get(g.Key).Order).ToDictionary(g => g.Key, g => g.Count()),
        seedWatch.Elapsed.TotalSeconds, check);
    Log($"Seeded in {seedWatch.Elapsed.TotalSeconds:0.0} s: {report.Seed.HistoryRows:N0} history rows; {check}");

    await using var salesDb = NpgsqlDataSource.Create(postgres.ConnectionString("salesdb"));
    if (options.Phases.Contains("reports"))
    {
        Log($"Reports: {options.WarmupRounds} warm-up + {options.Rounds} rounds of the aggregate scan and the four report RPCs, one call at a time");
        await QuietAsync("reports");
        var owners = Enumerable.Range(0, options.Owners).Select(Seeder.Owner).ToArray();
        report.Reports = await ReportPhase.RunAsync(clients[0], salesDb, owners, options.Rounds, options.WarmupRounds, cpu, ct);
        Log($"  scan p50 {report.Reports.Scan.Latency.P50:0.00} ms; " + string.Join("; ",
            report.Reports.Reports.Select(r => $"{r.Name} p50 {r.Latency.P50:0.00} ms ({r.Latency.P50 / report.Reports.Scan.Latency.P50:0.00}×)")));
    }

    var threads = Math.Min(options.PgbenchThreads, options.Clients);
    if (options.Phases.Contains("pgbench-tpcb"))
    {
        var pgbench = new Pgbench(postgres, "pgbench", dataDirectory);
        Log($"pgbench -i -s {options.PgbenchScale}");
        await pgbench.InitializeAsync(options.PgbenchScale, ct);
        Log($"Ceiling for writes: pgbench (TPC-B) -c {options.Clients} -j {threads} -T {pgSeconds} (after a {pgWarmup} s warm-up run)");
        await QuietAsync("pgbench TPC-B");
        await pgbench.WarmUpAsync([], options.Clients, threads, pgWarmup, ct);
        report.PgbenchTpcb = await pgbench.RunAsync("tpc-b", [], options.Clients, threads, pgSeconds, cpu, ct);
        Log($"  {report.PgbenchTpcb.Tps:N0} tps, p50 {report.PgbenchTpcb.Latency.P50:0.00} ms, p99 {report.PgbenchTpcb.Latency.P99:0.00} ms");
    }

    if (options.Phases.Contains("move"))
    {
        var shares = MoveWorker.Shares(seed, options.Clients);
        if (shares.Any(s => s.Count == 0)) throw new InvalidOperationException("Too few open opportunities for one per client: seed more.");
        report.MoveSetup = $"{shares.Sum(s => s.Count):N0} seeded open opportunities split between the {options.Clients} clients; " +
                           "each call moves a random one of the client's to the next open stage, every 20th closes one as won or lost with a reason";
        var workers = shares.Select((s, i) => new MoveWorker(clients[i % clients.Length], pipeline, s, 100 + i)).ToArray();
        Log($"MoveStage: {options.Clients} clients, {options.WarmupSeconds} s warm-up + {options.DurationSeconds} s");
        await QuietAsync("MoveStage");
        report.MoveStage = await ClosedLoop.RunAsync("MoveStage", options.Clients, options.Connections, warmup, duration,
            i => () => workers[i].MoveAsync(ct), cpu, ct);
        var m = report.MoveStage;
        Log($"  {m.Throughput:N0} calls/s, p50 {m.Latency.P50:0.00} ms, p99 {m.Latency.P99:0.00} ms, errors {m.Errors}" +
            (m.FirstError is null ? "" : $", first error: {m.FirstError}"));
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
    await BenchHost.StopAsync(service, "the service");
    if (infra is not null) await infra.DisposeAsync();
    report.LeftoverProcesses = BenchHost.LeftoverProcesses(dataDirectory);
}

report.TotalSeconds = total.Elapsed.TotalSeconds;
await ResultsText.SaveAsync(SalesReport.Markdown(report), SalesReport.Json(report), Path.Combine(outDirectory, $"sales-{runId}.json"), resultsPath,
    options.WriteResults, exitCode == 0);
return exitCode;

async Task QuietAsync(string phase)
{
    if (options.QuietWaitSeconds <= 0) return;
    var (waited, other) = await Quiet.WaitAsync(cpu, TimeSpan.FromSeconds(options.QuietWaitSeconds), 0.15, ct);
    var line = $"{phase}: other processes used {other:0.00} cores in the last second before it (waited {waited:0} s for < 0.15)";
    report.Background.Add(line);
    Log("  " + line);
}

static void Log(string message) => BenchHost.Log(message);
