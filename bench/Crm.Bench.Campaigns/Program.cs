using System.Diagnostics;
using Crm.Bench;
using Crm.Bench.Campaigns;
using Crm.Campaigns.V1;
using Crm.Launcher;
using Microsoft.Extensions.Logging;
using Npgsql;
using static Crm.Bench.BenchHost;

Options options;
try { options = Options.Parse(args); }
catch (Options.HelpRequested) { Console.WriteLine(Options.Help); return 0; }
catch (ArgumentException e) { Console.Error.WriteLine(e.Message); return 2; }

using var cts = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; Log("Interrupted: stopping."); cts.Cancel(); };
var ct = cts.Token;
var end = DateTime.UtcNow.Date;

if (options.GenerateOnly)
{
    Log($"Loading {options.Customers:N0} customers and {options.Orders:N0} orders (seed {options.Seed}) into the given database");
    var g = await Generator.LoadAsync(options.Connection!, options.Customers, options.Orders, options.Seed, end, ct);
    Log($"Done: {g.Orders:N0} orders, {g.Lines:N0} lines, {g.Buyers:N0} buyers; COPY {g.LoadSeconds:0.0} s, keys and indexes {g.IndexSeconds:0.0} s");
    return 0;
}

var root = FindRepoRoot();
var runId = DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", System.Globalization.CultureInfo.InvariantCulture);
var dataDirectory = Path.Combine(Path.GetTempPath(), "crm-bench-" + Guid.NewGuid().ToString("N")[..10]);
var cpu = new CpuMeter();
var total = Stopwatch.StartNew();
var result = new CampaignsResult { RunId = runId, Options = options, Machine = MachineInfo.Collect(root) };
var serviceDll = Path.Combine(root, "services", "Campaigns", "bin", "Release", "net10.0", "Crm.Campaigns.dll");
using var loggerFactory = LoggerFactory.Create(b => b.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning));

Infrastructure? infra = null;
Microsoft.AspNetCore.Builder.WebApplication? standIn = null;
ServiceProcess? service = null;
Grpc.Net.Client.GrpcChannel[] channels = [];
var exitCode = 0;
try
{
    if (!File.Exists(serviceDll)) throw new FileNotFoundException("Build the bench in Release first (bench/run.sh campaigns does): " + serviceDll);
    Log($"Starting Postgres, Redis and RabbitMQ (durable) in {dataDirectory}");
    infra = await Infrastructure.StartAsync(new InfrastructureOptions
    {
        DataDirectory = dataDirectory, DeleteDataOnDispose = true, Durable = true, Databases = ["campaignsdb"],
    }, loggerFactory.CreateLogger("infrastructure"), ct);
    var postgres = infra.Postgres!;
    var db = postgres.ConnectionString("campaignsdb");
    result.Machine.Postgres = await PostgresSettingsAsync(postgres.AdminConnectionString, ct);

    var standInPort = FreePort();
    standIn = await Marketing.StartCustomerStandInAsync(standInPort, ct);
    async Task<(ServiceProcess Service, Grpc.Net.Client.GrpcChannel Channel)> StartServiceAsync(string dll, string logName)
    {
        var port = FreePort();
        Log($"Starting the campaign service ({dll}) as its own process (pid below) on 127.0.0.1:{port}");
        var started = ServiceProcess.Start(dll, new Dictionary<string, string>
        {
            ["ConnectionStrings__campaignsdb"] = db,
            ["ConnectionStrings__messaging"] = infra!.RabbitMq!.AmqpUri.ToString(),
            ["ConnectionStrings__cache"] = infra!.Redis!.ConnectionString, // the campaigns' frequency cap (part 2) reads Redis
            ["OTEL_SERVICE_NAME"] = "campaigns",
            ["DOTNET_ENVIRONMENT"] = "Production",
        },
        [
            $"--Kestrel:Endpoints:http:Url=http://127.0.0.1:{port}", "--Kestrel:Endpoints:http:Protocols=Http2",
            $"--services:customer:http:0=http://127.0.0.1:{standInPort}", // the stand-in: GetCustomer for the campaign dispatcher's {name}
            "--Marketing:QuietHoursStart=", // no quiet hours: between 21:00 and 09:00 Shanghai time every tier-welcome send would be deferred
            "--Campaigns:Recompute:Scheduled=false", $"--Campaigns:Recompute:FitSampleSize={options.FitSample}",
            "--Logging:LogLevel:Default=Warning", "--Logging:LogLevel:Crm.Campaigns=Information", $"--Campaigns:OrderPaidBatches={(options.OrderPaidSingle ? "false" : "true")}",
            $"--Bench:DataDirectory={dataDirectory}", // names the run, so bench/run.sh finds the process if it were left behind
            .. BenchAuth.ServiceArgs,
        ], Path.Combine(dataDirectory, logName));
        var channel = Channels(new Uri($"http://127.0.0.1:{port}"), 1)[0];
        await WaitReadyAsync(new AnalyticsService.AnalyticsServiceClient(channel), started, ct);
        return (started, channel);
    }
    (service, var mainChannel) = await StartServiceAsync(serviceDll, "campaigns-service.log");
    channels = [mainChannel];
    var analytics = new AnalyticsService.AnalyticsServiceClient(channels[0]);
    Log($"Service pid {service.Pid} ready (migrations applied); RSS {service.Memory().Rss / 1024} MiB");

    Log($"Generating {options.Customers:N0} customers / {options.Orders:N0} orders (seed {options.Seed}) and loading them with binary COPY");
    result.Data = await Generator.LoadAsync(db, options.Customers, options.Orders, options.Seed, end, ct);
    Log($"Loaded {result.Data.Orders:N0} orders ({result.Data.Lines:N0} lines, {result.Data.Refunded:N0} refunded) for {result.Data.Buyers:N0} buyers: " +
        $"COPY {result.Data.LoadSeconds:0.0} s, keys + indexes + VACUUM ANALYZE {result.Data.IndexSeconds:0.0} s");
    {
        // The data went in behind the service's back (COPY): fill the monthly roll-up as the service's start-up or a rebuild would
        // (the recompute reads its facts from it, so --recompute-only needs it too).
        var fill = Stopwatch.StartNew();
        await using (var rollupSource = NpgsqlDataSource.Create(db))
            await Crm.Campaigns.Reports.SalesRollup.RefillAsync(rollupSource, "Asia/Shanghai", ct);
        result.RollupFillSeconds = fill.Elapsed.TotalSeconds;
        Log($"Monthly sales roll-up filled in {result.RollupFillSeconds:0.0} s");
    }

    // Ceiling: one plain aggregate scan of the orders, every row to the client; the first run warms the cache, then each
    // round scans once and recomputes once, and the figures are the medians of the rounds: on this machine a single pair
    // swung from 2.4 to 4.0 x with the same code and data.
    const string ceilingSql = "SELECT customer_id, count(*), sum(amount_paid - amount_refunded), max(paid_at) FROM orders GROUP BY customer_id";
    result.CeilingSql = ceilingSql;
    result.CeilingWarmSeconds = await ScanAsync(db, ceilingSql, options.WorkMem, serial: false, ct);

    var watch = Stopwatch.StartNew();
    var rounds = options.RecomputeOnly > 0 ? options.RecomputeOnly : options.Rounds;
    for (var k = 0; k < rounds; k++)
    {
        Log($"Round {k + 1} of {rounds}");
        result.Quiet["ceiling"] = Math.Max(result.Quiet.GetValueOrDefault("ceiling"), await QuietAsync("ceiling"));
        // The faster of the plan Postgres picks (parallel workers) and the same scan without workers: on a small machine
        // starting workers can cost more than they save, and a slow ceiling would flatter the ratio.
        var planned = await ScanAsync(db, ceilingSql, options.WorkMem, serial: false, ct);
        var serialScan = await ScanAsync(db, ceilingSql, options.WorkMem, serial: true, ct);
        var scan = Math.Min(planned, serialScan);
        result.CeilingRuns.Add(scan);
        result.CeilingPlannedRuns.Add(planned);
        result.CeilingSerialRuns.Add(serialScan);
        Log($"Ceiling: aggregate scan {scan:0.00} s (as planned {planned:0.00} s, without parallel workers {serialScan:0.00} s; warm-up run {result.CeilingWarmSeconds:0.00} s)");
        if (options.CompareDll is { } other)
        {
            // A/B on the same data: the other build's recompute first, its service stopped before ours runs again.
            var (b, channel) = await StartServiceAsync(other, $"campaigns-service-b{k}.log");
            try
            {
                var bWatch = Stopwatch.StartNew();
                var client = new AnalyticsService.AnalyticsServiceClient(channel);
                var bRun = await client.RecomputeScoresAsync(new RecomputeScoresRequest { RefitModels = true }, deadline: DateTime.UtcNow.AddSeconds(30), cancellationToken: ct);
                while (bRun.State == RecomputeState.Running)
                {
                    await Task.Delay(20, ct);
                    bRun = await client.GetRecomputeRunAsync(new GetRecomputeRunRequest { Id = bRun.Id }, deadline: DateTime.UtcNow.AddSeconds(30), cancellationToken: ct);
                }
                Log($"Recompute by {other}: {bWatch.Elapsed.TotalSeconds:0.00} s, {bRun.State}; peak RSS {b.Memory().Hwm / 1024} MiB");
            }
            finally
            {
                channel.Dispose();
                await b.DisposeAsync();
                var outDirectory = Path.GetFullPath(options.OutDirectory ?? Path.Combine(root, "bench", "out"));
                Directory.CreateDirectory(outDirectory);
                foreach (var log in Directory.GetFiles(dataDirectory, "campaigns-service-b*.log"))
                    File.Copy(log, Path.Combine(outDirectory, $"campaigns-{runId}-{Path.GetFileName(log)[..^4]["campaigns-".Length..]}.log"), overwrite: true);
            }
        }
        result.Quiet["recompute"] = Math.Max(result.Quiet.GetValueOrDefault("recompute"), await QuietAsync("recompute"));
        service.StartWindow();
        watch.Restart();
        // RecomputeScores starts the run and answers at once; the duration runs from the call to the first poll that sees it FINISHED.
        var run = await analytics.RecomputeScoresAsync(new RecomputeScoresRequest { RefitModels = true }, deadline: DateTime.UtcNow.AddSeconds(30), cancellationToken: ct);
        var recomputeDeadline = DateTime.UtcNow.AddMinutes(30);
        while (run.State == RecomputeState.Running)
        {
            if (DateTime.UtcNow > recomputeDeadline) throw new TimeoutException($"recompute {run.Id} still running after 30 minutes");
            await Task.Delay(20, ct);
            run = await analytics.GetRecomputeRunAsync(new GetRecomputeRunRequest { Id = run.Id }, deadline: DateTime.UtcNow.AddSeconds(30), cancellationToken: ct);
        }
        var seconds = watch.Elapsed.TotalSeconds;
        if (run.State != RecomputeState.Finished) throw new InvalidOperationException($"recompute {run.Id} {run.State}: {run.Error}");
        result.RecomputeRuns.Add(seconds);
        var peakKb = await service.EndWindowAsync();
        result.RecomputePeakRssKb = Math.Max(result.RecomputePeakRssKb, peakKb);
        result.Run = run;
        Log($"Recompute: {seconds:0.00} s for {run.Customers:N0} customers (fit on {run.FitSample:N0}), peak RSS {peakKb / 1024} MiB");
    }
    result.CeilingSeconds = Stats.Median(result.CeilingRuns);
    result.RecomputeSeconds = Stats.Median(result.RecomputeRuns);
    Log($"Medians of {rounds}: aggregate scan {result.CeilingSeconds:0.00} s, recompute {result.RecomputeSeconds:0.00} s ({result.RecomputeSeconds / result.CeilingSeconds:0.00} x)");
    if (options.RecomputeOnly > 0) goto done; // --recompute-only: no report, lag or campaigns, no results file

    // One sales report by month over the last two full years of months (24 months ending with the last full one).
    var lastMonth = new DateOnly(end.Year, end.Month, 1).AddDays(-1);
    var first = new DateOnly(lastMonth.Year, lastMonth.Month, 1).AddMonths(-23);
    var reportRequest = new GetSalesReportRequest
    {
        From = new Google.Type.Date { Year = first.Year, Month = first.Month, Day = 1 },
        To = new Google.Type.Date { Year = lastMonth.Year, Month = lastMonth.Month, Day = lastMonth.Day }, Granularity = Granularity.Month,
    };
    result.ReportRange = $"{first:yyyy-MM-dd} .. {lastMonth:yyyy-MM-dd}";
    watch.Restart();
    await analytics.GetSalesReportAsync(reportRequest, deadline: DateTime.UtcNow.AddMinutes(10), cancellationToken: ct);
    result.ReportWarmSeconds = watch.Elapsed.TotalSeconds;
    result.Quiet["report"] = await QuietAsync("sales report");
    watch.Restart();
    var report = await analytics.GetSalesReportAsync(reportRequest, deadline: DateTime.UtcNow.AddMinutes(10), cancellationToken: ct);
    result.ReportSeconds = watch.Elapsed.TotalSeconds;
    result.ReportOrders = report.Total.OrderCount;
    result.ReportPeriods = report.Periods.Count;
    Log($"Sales report by month {result.ReportRange}: {result.ReportSeconds:0.00} s ({report.Periods.Count} months, {report.Total.OrderCount:N0} orders)");

    var customers = await SampleCustomersAsync(db, ct);
    {
        // The load, the roll-up fill and the recompute leave gigabytes of dirty pages; the checkpoint that writes them stalled
        // every fsync on the disk (RabbitMQ's confirms and the consumers' commits alike) for seconds in the middle of the lag
        // phase. Written out first, the phase measures the consumers at 500/s, not the bulk load's flush.
        var flush = Stopwatch.StartNew();
        await using var admin = new NpgsqlConnection(postgres.AdminConnectionString);
        await admin.OpenAsync(ct);
        await using var checkpoint = new NpgsqlCommand("CHECKPOINT", admin) { CommandTimeout = 600 };
        await checkpoint.ExecuteNonQueryAsync(ct);
        Log($"CHECKPOINT before the lag phase: {flush.Elapsed.TotalSeconds:0.0} s");
    }
    result.Quiet["lag"] = await QuietAsync("OrderPaid lag");
    Log($"OrderPaid → read model: {options.LagRate}/s for {options.LagSeconds} s");
    service.StartWindow();
    result.Lag = await Lag.RunAsync(infra.RabbitMq!.AmqpUri.ToString(), db, customers, options.LagRate, TimeSpan.FromSeconds(options.LagSeconds), cpu, ct);
    result.LagPeakRssKb = await service.EndWindowAsync();
    Log($"Lag: {result.Lag.Arrived:N0}/{result.Lag.Sent:N0} arrived, p50 {result.Lag.Lag.P50:0.0} ms, p99 {result.Lag.Lag.P99:0.0} ms, max {result.Lag.Lag.Max:0.0} ms " +
        $"(achieved {result.Lag.AchievedRate:0} /s; publish p50 {result.Lag.Publish.P50:0.0} ms, p99 {result.Lag.Publish.P99:0.0} ms; CPU per event: {Report.PerEvent(result.Lag.Cpu, result.Lag.Sent)})");

    // Issue 11: segments and a triggered campaign on the same model.
    result.Quiet["segments"] = await QuietAsync("segment count and snapshot");
    result.Segments = await Marketing.SegmentsAsync(new SegmentService.SegmentServiceClient(channels[0]), db, ct);
    Log($"Segment count (four rules) {result.Segments.CountSeconds:0.000} s → {result.Segments.Count:N0}; snapshot of {result.Segments.SnapshotMembers:N0} " +
        $"in {result.Segments.SnapshotSeconds:0.00} s");
    result.Quiet["trigger"] = await QuietAsync("tier-welcome trigger");
    Log($"TierChanged → tier-welcome send: {options.TriggerRate}/s for {options.TriggerSeconds} s");
    (result.Trigger, result.TriggerStatuses) = await Marketing.TriggerAsync(new CampaignService.CampaignServiceClient(channels[0]), infra.RabbitMq!.AmqpUri.ToString(), db,
        options.TriggerRate, TimeSpan.FromSeconds(options.TriggerSeconds), cpu, ct);
    Log($"Trigger: {result.Trigger.Arrived:N0}/{result.Trigger.Sent:N0} sent, p50 {result.Trigger.Lag.P50:0.0} ms, p99 {result.Trigger.Lag.P99:0.0} ms " +
        $"(achieved {result.Trigger.AchievedRate:0} /s)");

    result.ServiceHwmKb = service.Memory().Hwm;
    result.TotalSeconds = total.Elapsed.TotalSeconds;
    await Report.WriteAsync(result, Path.GetFullPath(options.Results ?? Path.Combine(root, "bench", "RESULTS-campaigns.md")),
        Path.GetFullPath(options.OutDirectory ?? Path.Combine(root, "bench", "out")));
done:;
}
catch (OperationCanceledException) when (ct.IsCancellationRequested)
{
    exitCode = 130;
}
catch (Exception e)
{
    Console.Error.WriteLine($"Campaigns bench failed: {e}");
    exitCode = 1;
}
finally
{
    foreach (var c in channels) c.Dispose();
    if (service is not null)
    {
        if (exitCode != 0 && File.Exists(Path.Combine(dataDirectory, "campaigns-service.log")))
            Console.Error.WriteLine("Service log (tail):\n" + string.Join('\n', File.ReadLines(Path.Combine(dataDirectory, "campaigns-service.log")).TakeLast(30)));
        await service.DisposeAsync();
        // Kept beside the JSON: the recompute's phase timings and any error are in it.
        var serviceLog = Path.Combine(dataDirectory, "campaigns-service.log");
        if (File.Exists(serviceLog))
        {
            var outDirectory = Path.GetFullPath(options.OutDirectory ?? Path.Combine(root, "bench", "out"));
            Directory.CreateDirectory(outDirectory);
            File.Copy(serviceLog, Path.Combine(outDirectory, $"campaigns-{runId}-service.log"), overwrite: true);
        }
    }
    if (standIn is not null) await standIn.DisposeAsync();
    if (infra is not null) await infra.DisposeAsync();
    Log($"Stopped everything ({total.Elapsed.TotalMinutes:0.0} min in all)");
}
return exitCode;

async Task<double> QuietAsync(string phase)
{
    var (waited, other) = await Quiet.WaitAsync(cpu, TimeSpan.FromSeconds(options.MaxQuietWaitSeconds), options.QuietCores, ct);
    Log($"Before {phase}: waited {waited:0} s for quiet; other load {other:0.00} cores");
    return other;
}

static async Task WaitReadyAsync(AnalyticsService.AnalyticsServiceClient client, ServiceProcess service, CancellationToken ct)
{
    var deadline = DateTime.UtcNow.AddMinutes(2);
    while (true)
    {
        if (service.HasExited) throw new InvalidOperationException("The campaign service exited at start-up.");
        try
        {
            await client.GetModelParametersAsync(new GetModelParametersRequest(), deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: ct);
            return;
        }
        catch (Grpc.Core.RpcException) when (DateTime.UtcNow < deadline) { await Task.Delay(250, ct); }
    }
}

/// <summary>Runs a query to the end, reading every row; returns the seconds it took.</summary>
static async Task<double> ScanAsync(string connectionString, string sql, string workMem, bool serial, CancellationToken ct)
{
    await using var connection = new NpgsqlConnection(connectionString);
    await connection.OpenAsync(ct);
    await using (var set = new NpgsqlCommand($"SET work_mem = '{workMem.Replace("'", "", StringComparison.Ordinal)}'" +
                                             (serial ? "; SET max_parallel_workers_per_gather = 0" : ""), connection))
        await set.ExecuteNonQueryAsync(ct);
    var watch = Stopwatch.StartNew();
    await using var command = new NpgsqlCommand(sql, connection) { CommandTimeout = 3600 };
    await using var reader = await command.ExecuteReaderAsync(ct);
    long rows = 0;
    while (await reader.ReadAsync(ct)) rows++;
    return rows >= 0 ? watch.Elapsed.TotalSeconds : 0;
}

static async Task<List<Guid>> SampleCustomersAsync(string connectionString, CancellationToken ct)
{
    await using var connection = new NpgsqlConnection(connectionString);
    await connection.OpenAsync(ct);
    await using var command = new NpgsqlCommand("SELECT customer_id FROM customers ORDER BY customer_id LIMIT 10000", connection);
    await using var reader = await command.ExecuteReaderAsync(ct);
    var ids = new List<Guid>();
    while (await reader.ReadAsync(ct)) ids.Add(reader.GetGuid(0));
    return ids;
}
