using System.Diagnostics;
using Crm.Bench;
using Crm.Bench.Partner;
using Crm.Changes.V1;
using Crm.Common.V1;
using Crm.Customer.V1;
using Crm.Launcher;
using Google.Protobuf.WellKnownTypes;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using Npgsql;

Options options;
try { options = Options.Parse(args); }
catch (HelpRequested help) { Console.WriteLine(help.Message); return 0; }
catch (Exception e) when (e is ArgumentException or FormatException) { Console.Error.WriteLine(e.Message); return 2; }

using var cts = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; BenchHost.Log("Interrupted: stopping."); cts.Cancel(); };
var ct = cts.Token;

var root = BenchHost.FindRepoRoot();
var resultsPath = Path.GetFullPath(options.Results ?? Path.Combine(root, "bench", "RESULTS-partner.md"));
var outDirectory = Path.GetFullPath(options.OutDirectory ?? Path.Combine(root, "bench", "out"));
var runId = DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", System.Globalization.CultureInfo.InvariantCulture);
var dataDirectory = Path.Combine(Path.GetTempPath(), "crm-bench-" + Guid.NewGuid().ToString("N")[..10]);
var cpu = new CpuMeter();
var total = Stopwatch.StartNew();
using var loggerFactory = LoggerFactory.Create(b => b.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning));
var report = new PartnerReport { RunId = runId, Options = options, Machine = MachineInfo.Collect(root) };

Infrastructure? infra = null;
WebApplication? service = null;
GrpcChannel[] channels = [];
var exitCode = 0;
try
{
    BenchHost.Log($"Starting Postgres, Redis and RabbitMQ (durable) in {dataDirectory}");
    infra = await Infrastructure.StartAsync(new InfrastructureOptions
    {
        DataDirectory = dataDirectory, DeleteDataOnDispose = true, Durable = true, Databases = ["customerdb"],
    }, loggerFactory.CreateLogger("infrastructure"), ct);
    var postgres = infra.Postgres!;
    var customerDb = postgres.ConnectionString("customerdb");
    report.Machine.Postgres = await BenchHost.PostgresSettingsAsync(postgres.AdminConnectionString, ct);

    var port = BenchHost.FreePort();
    BenchHost.Log($"Starting the customer service in-process on 127.0.0.1:{port}");
    service = Crm.Customer.CustomerApp.Build(
    [
        $"--ConnectionStrings:customerdb={customerDb}",
        $"--ConnectionStrings:cache={infra.Redis!.ConnectionString}",
        $"--ConnectionStrings:messaging={infra.RabbitMq!.AmqpUri}",
        $"--Kestrel:Endpoints:http:Url=http://127.0.0.1:{port}",
        "--Kestrel:Endpoints:http:Protocols=Http2",
        "--OTEL_SERVICE_NAME=customer",
        $"--Logging:LogLevel:Default={options.ServiceLogLevel}",
        .. BenchAuth.ServiceArgs,
    ]);
    await service.StartAsync(ct);
    channels = BenchHost.Channels(new Uri($"http://127.0.0.1:{port}"), 1);
    var customers = new CustomerService.CustomerServiceClient(channels[0]);
    var import = new CustomerImport.CustomerImportClient(channels[0]);
    var feed = new ChangeFeed.ChangeFeedClient(channels[0]);

    BenchHost.Log($"Seeding {options.Customers:N0} customers and their ERP ids with COPY");
    var seedWatch = Stopwatch.StartNew();
    var customerIds = await Seeding.CustomersAsync(customerDb, options.Customers, ct);
    report.SeedSeconds = seedWatch.Elapsed.TotalSeconds;
    var firstPaidAt = DateTime.UtcNow.Date.AddSeconds(-(options.Orders * 10L) - 86_400);
    var generator = new OrderGenerator(options.Orders, options.Customers, options.RefShare, options.Seed, firstPaidAt);

    BenchHost.Log($"Ceiling: binary COPY of the {options.Orders:N0} generated orders into a table shaped like orders");
    await QuietAsync("COPY ceiling");
    report.Copy = await CopyCeiling.RunAsync(customerDb, generator, customerIds, cpu, ct);
    BenchHost.Log($"  COPY: {report.Copy.RowsPerSecond:N0} rows/s ({report.Copy.Seconds:0.0} s)");

    // The feed's lag first, while the database is small and the outbox empty (the import leaves a million rows to relay).
    await using (var db = new NpgsqlConnection(customerDb))
    {
        await db.OpenAsync(ct);
        var random = new Random(options.Seed);
        RecordOrderRequest Order(int i, string externalId)
        {
            var request = new RecordOrderRequest
            {
                CustomerId = customerIds[random.Next(customerIds.Length)].ToString(), ExternalOrderId = externalId, StoreId = "SZ-001",
                Channel = "store", AmountPaid = new Money { Amount = "1999.00" }, PaymentMethod = "card", PaidAt = Timestamp.FromDateTime(DateTime.UtcNow),
            };
            request.Lines.Add(new OrderLine { Sku = "RING-18K-001", ProductName = "18K ring", Quantity = 1, UnitPrice = new Money { Amount = "1999.00" } });
            return request;
        }
        async Task<string> EndTokenAsync()
        {
            await using var command = new NpgsqlCommand("SELECT coalesce(max(tx)::text || '-' || max(id), '') FROM change_events", db);
            return (string)(await command.ExecuteScalarAsync(ct))!;
        }
        var lagImport = options.LagSource == "import" ? import : null;
        BenchHost.Log($"Change-feed lag: warm-up, {options.LagSource} at {options.LagRate:N0}/s for {options.LagWarmupSeconds:0} s");
        if (options.LagWarmupSeconds > 0)
            await FeedLag.MeasureAsync(customers, lagImport, feed, await EndTokenAsync(), Order, $"warm-{runId}-", options.LagRate, options.LagWarmupSeconds,
                options.LagWaitSeconds, cpu, ct);
        await QuietAsync("change-feed lag");
        BenchHost.Log($"Change-feed lag: {options.LagSource} at {options.LagRate:N0}/s for {options.LagSeconds:0} s (open loop), one WatchChanges subscriber");
        report.FeedLag = await FeedLag.MeasureAsync(customers, lagImport, feed, await EndTokenAsync(), Order, $"lag-{runId}-", options.LagRate, options.LagSeconds,
            options.LagWaitSeconds, cpu, ct);
        var l = report.FeedLag;
        BenchHost.Log($"  lag: {l.Delivered:N0}/{l.Sent - l.SendErrors:N0} delivered at {l.AchievedRate:N0}/s, p50 {l.LagFromReturn.P50:0.0} ms, " +
                      $"p99 {l.LagFromReturn.P99:0.0} ms, max {l.LagFromReturn.Max:0.0} ms" + (l.FirstError is null ? "" : $"; first error {l.FirstError}"));

        await using (var drained = new NpgsqlCommand("SELECT count(*) FROM outbox_messages WHERE dead_at IS NULL", db))
        {
            var wait = Stopwatch.StartNew();
            while ((long)(await drained.ExecuteScalarAsync(ct))! > 0 && wait.Elapsed < TimeSpan.FromSeconds(60)) await Task.Delay(100, ct);
        }
        await QuietAsync("streaming import");
        BenchHost.Log($"Streaming import: {options.Orders:N0} orders through one ImportOrders stream");
        var backendsBefore = await BackendCpu.TakeAsync(postgres.AdminConnectionString, ct);
        report.Import = await ImportRun.RunAsync(import, generator, customerIds, $"bench-{runId}", cpu, ct);
        report.ImportBackends = BackendCpu.Between(backendsBefore, await BackendCpu.TakeAsync(postgres.AdminConnectionString, ct));
        await using (var backlog = new NpgsqlCommand("SELECT count(*) FROM outbox_messages WHERE dead_at IS NULL", db))
            report.OutboxBacklogAfterImport = (long)(await backlog.ExecuteScalarAsync(ct))!;
        var i = report.Import;
        BenchHost.Log($"  import: {i.OrdersPerSecond:N0} orders/s ({i.Seconds:0.0} s; {i.Created:N0} created, {i.Rejected:N0} rejected), " +
                      $"ratio to COPY {i.OrdersPerSecond / report.Copy.RowsPerSecond:0.000}; RSS max {i.Flatness.RssFirstHalf / 1048576} → {i.Flatness.RssSecondHalf / 1048576} MiB");
        await using (var count = new NpgsqlCommand("SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM change_events WHERE event_type = 'OrderPaid')", db))
        await using (var reader = await count.ExecuteReaderAsync(ct))
        {
            await reader.ReadAsync(ct);
            (report.OrdersInDatabase, report.OrderPaidEvents) = (reader.GetInt64(0), reader.GetInt64(1));
        }
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
    BenchHost.Log("Stopping the service and the infrastructure");
    foreach (var channel in channels) channel.Dispose();
    await BenchHost.StopAsync(service, "the service");
    if (infra is not null) await infra.DisposeAsync();
    report.LeftoverProcesses = BenchHost.LeftoverProcesses(dataDirectory);
}

report.TotalSeconds = total.Elapsed.TotalSeconds;
await ResultsText.SaveAsync(Report.Markdown(report), Report.Json(report), Path.Combine(outDirectory, $"partner-{runId}.json"), resultsPath,
    options.WriteResults, exitCode == 0);
return exitCode;

async Task QuietAsync(string phase)
{
    if (options.QuietWaitSeconds <= 0) return;
    var (waited, other) = await Quiet.WaitAsync(cpu, TimeSpan.FromSeconds(options.QuietWaitSeconds), 0.15, ct);
    var line = $"{phase}: other processes used {other:0.00} cores in the last second before it (waited {waited:0} s for < 0.15)";
    report.Background.Add(line);
    BenchHost.Log("  " + line);
}
