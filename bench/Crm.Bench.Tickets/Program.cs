using System.Diagnostics;
using System.Globalization;
using Crm.Bench;
using Crm.Bench.Tickets;
using Crm.Launcher;
using Crm.Tickets;
using Crm.Tickets.Domain;
using Crm.Tickets.Sla;
using Crm.Tickets.V1;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using Options = Crm.Bench.Tickets.Options;

if (args.Contains("--help") || args.Contains("-h"))
{
    Console.WriteLine(Options.Usage);
    return 0;
}
Options options;
try { options = Options.Parse(args); }
catch (Exception e) when (e is ArgumentException or FormatException or OverflowException) { Console.Error.WriteLine(e.Message); return 2; }

using var cts = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; Log("Interrupted: stopping."); cts.Cancel(); };
var ct = cts.Token;

var root = BenchHost.FindRepoRoot();
var resultsPath = Path.GetFullPath(options.Results ?? Path.Combine(root, "bench", "RESULTS-tickets.md"));
var outDirectory = Path.GetFullPath(options.OutDirectory ?? Path.Combine(root, "bench", "out"));
var runId = DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture);
var dataDirectory = Path.Combine(Path.GetTempPath(), "crm-bench-" + Guid.NewGuid().ToString("N")[..10]);
var cpu = new CpuMeter();
var total = Stopwatch.StartNew();
// The bench's SLA configuration: a 24×7 desk in UTC, so "due in a few seconds" is wall time; the default policies.
string[] calendarArgs =
[
    "--Tickets:Calendar:TimeZone=UTC", "--Tickets:Calendar:WorkStart=00:00", "--Tickets:Calendar:WorkEnd=24:00",
    .. Enum.GetValues<DayOfWeek>().Select((d, i) => $"--Tickets:Calendar:WorkDays:{i}={d}"),
];
var ticketsOptions = new TicketsOptions
{
    Calendar = new CalendarOptions { TimeZone = "UTC", WorkStart = "00:00", WorkEnd = "24:00", WorkDays = [.. Enum.GetValues<DayOfWeek>()] },
};

using var loggerFactory = LoggerFactory.Create(b => b.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning));
var report = new TicketsReport { RunId = runId, Options = options, Machine = MachineInfo.Collect(root) };

Infrastructure? infra = null;
WebApplication? service = null;
var channels = new List<GrpcChannel>();
var exitCode = 0;
try
{
    Log($"Starting Postgres, Redis and RabbitMQ (durable) in {dataDirectory}");
    infra = await Infrastructure.StartAsync(new InfrastructureOptions
    {
        DataDirectory = dataDirectory, DeleteDataOnDispose = true, Durable = true, Databases = ["ticketsdb", "pgbench"],
    }, loggerFactory.CreateLogger("infrastructure"), ct);
    var postgres = infra.Postgres!;
    report.Machine.Postgres = await BenchHost.PostgresSettingsAsync(postgres.AdminConnectionString, ct);
    var ticketsDb = postgres.ConnectionString("ticketsdb");
    await using var db = NpgsqlDataSource.Create(ticketsDb);

    // The scheduler's own timer is parked while the bench times passes itself (as the tests do); the breach-latency
    // phase restarts the service with the interval an operator would set.
    var (app, client, address) = await StartServiceAsync("30.00:00:00");
    service = app;
    await CreateQueuesAsync(client);

    var seeder = new TicketSeeder(db, ticketsOptions);
    Log($"Seeding {options.Tickets:N0} open tickets with COPY");
    var seedWatch = Stopwatch.StartNew();
    await seeder.SeedTiersAsync(ct);
    var seeded = await seeder.SeedOpenAsync(options.Tickets, TimeSpan.FromMinutes(30), ct);
    var seedSeconds = seedWatch.Elapsed.TotalSeconds;
    var vacuumWatch = Stopwatch.StartNew();
    await ExecuteAsync(db, "VACUUM ANALYZE tickets", ct); // what autovacuum does to a freshly loaded table, done now
    var sample = seeded[^1];
    var back = await client.GetTicketAsync(new GetTicketRequest { Id = sample.Id.ToString() }, cancellationToken: ct);
    if (back.Subject != sample.Subject || back.FirstResponse.DueAt.ToDateTime() != sample.FrDueAt || back.State != (TicketState)sample.State)
        throw new InvalidOperationException($"GetTicket did not return the seeded ticket {sample.Id} as written.");
    report.Seeding = new Seeding(options.Tickets, seedSeconds, vacuumWatch.Elapsed.TotalSeconds,
        await ScalarAsync(db, "SELECT pg_relation_size('tickets')", ct), await ScalarAsync(db, "SELECT pg_total_relation_size('tickets')", ct),
        $"{sample.Id}: {TicketStore.StateNames[sample.State]}, first response due {sample.FrDueAt:yyyy-MM-dd HH:mm:ss} UTC");
    Log($"Seeded in {seedSeconds:0.0} s (+ VACUUM ANALYZE {vacuumWatch.Elapsed.TotalSeconds:0.0} s); GetTicket returns {sample.Id} as written");

    var scheduler = service.Services.GetRequiredService<SlaScheduler>();
    if (options.Phases.Contains("pass"))
    {
        // The first pass after loading logs every target already within the near-breach window; a scheduler that has
        // been running did that long ago, so it is reported but not compared.
        var first = await TimedPassAsync(scheduler);
        Log($"First pass after seeding: {first.Ms:0.0} ms, {first.NearBreaches:N0} near-breaches marked");
        await QuietAsync("breach pass");
        var idle = new List<Pass>();
        for (var i = 0; i < options.Repeats; i++) idle.Add(await TimedPassAsync(scheduler));
        var scans = await ScanAsync(db, options.Repeats, ct);
        var rows = (int)await ScalarAsync(db, "SELECT count(*) FROM tickets", ct);
        // The relay publishes a pass's SlaBreached after the pass. The next pass is seeded once all of them arrived, so
        // each measured pass starts as the first one does (no publishing of the previous pass beside it); the publishing
        // is timed and its CPU counted on its own.
        await using var probe = await BreachProbe.StartAsync(infra.RabbitMq!.AmqpUri, ct);
        async Task<Pass> BreachRoundAsync()
        {
            var overdue = await seeder.SeedOverdueAsync(options.Overdue, ct);
            var pass = await TimedPassAsync(scheduler);
            return pass with { Publishing = await PublishedAsync(probe, overdue.Select(t => t.Id).ToHashSet()) };
        }
        // The service was started seconds ago: the first busy passes and the relay's publishing of their events run code
        // for the first time, and the JIT tiers it up on a background thread during the next pass (80–130 ms of JIT time
        // in each of the first measured passes, next to about 110 ms of Postgres CPU on two cores). A running scheduler
        // did that long ago, so unmeasured rounds go first until the JIT has settled, as for OpenTicket.
        var settle = await JitWarmUp.UntilSettledAsync(TimeSpan.FromSeconds(options.JitSettleSeconds), async () =>
        {
            var watch = Stopwatch.StartNew();
            var round = await BreachRoundAsync();
            return (round.Breaches, watch.Elapsed);
        });
        Log($"  breach pass JIT warm-up: {settle}");
        await QuietAsync("breach pass (after its JIT warm-up)");
        var measured = new List<Pass>();
        for (var i = 0; i < options.Repeats; i++) measured.Add(await BreachRoundAsync());
        report.Pass = new PassPhase(first, idle, measured, scans.Ms, scans.Rows, scans.Plan, rows) { JitWarmUp = settle };
        Log($"  breach pass ({options.Overdue:N0} overdue): median {report.Pass.MedianPassMs:0.0} ms " +
            $"[{string.Join(", ", measured.Select(p => $"{p.Ms:0.0} ms/{p.Breaches} (bench CPU {p.Cpu.BenchSeconds * 1000:0} ms, Postgres {p.Cpu.PostgresSeconds * 1000:0} ms, other {p.Cpu.OtherSeconds * 1000:0} ms, JIT {p.Jit.Time.TotalMilliseconds:0} ms)"))}]; idle pass {report.Pass.MedianIdleMs:0.0} ms; " +
            $"plain scan median {report.Pass.MedianScanMs:0.0} ms ({scans.Plan}); CPU per breach: bench process {report.Pass.BenchUsPerBreach:0} µs, " +
            $"Postgres {report.Pass.PostgresUsPerBreach:0} µs");
    }

    if (options.Phases.Contains("at-risk"))
    {
        await QuietAsync("ListAtRisk");
        var request = new ListAtRiskRequest { WithinMinutes = options.AtRiskMinutes, PageSize = 200 };
        for (var i = 0; i < 3; i++) await client.ListAtRiskAsync(request, cancellationToken: ct); // warm-up
        var calls = new List<double>();
        var firstPage = 0;
        for (var i = 0; i < options.AtRiskCalls; i++)
        {
            var watch = Stopwatch.StartNew();
            var page = await client.ListAtRiskAsync(request, cancellationToken: ct);
            calls.Add(watch.Elapsed.TotalMilliseconds);
            firstPage = page.Tickets.Count;
        }
        var allWatch = Stopwatch.StartNew();
        var pages = 0;
        long listed = 0;
        var token = "";
        do
        {
            var page = await client.ListAtRiskAsync(new ListAtRiskRequest { WithinMinutes = options.AtRiskMinutes, PageSize = 200, PageToken = token },
                cancellationToken: ct);
            pages++;
            listed += page.Tickets.Count;
            token = page.NextPageToken;
        } while (token.Length > 0);
        var allMs = allWatch.Elapsed.TotalMilliseconds;
        var scans = await ScanAsync(db, options.Repeats, ct);
        report.AtRisk = new AtRiskPhase(options.AtRiskMinutes, 200, calls, firstPage, listed, pages, allMs, scans.Ms);
        Log($"  ListAtRisk({options.AtRiskMinutes} min, 200 a page): median {report.AtRisk.MedianCallMs:0.00} ms for {firstPage} rows; " +
            $"all {listed:N0} rows in {pages} pages {allMs:0} ms; plain scan median {report.AtRisk.MedianScanMs:0.0} ms");
    }

    if (options.Phases.Contains("open"))
    {
        var clients = options.Clients;
        var threads = Math.Min(options.PgbenchThreads, clients);
        var seconds = (int)Math.Round(options.DurationSeconds);
        var warm = Math.Max(1, (int)Math.Round(options.WarmupSeconds));
        var pgbench = new Pgbench(postgres, "pgbench", dataDirectory);
        Log($"pgbench -i -s {options.PgbenchScale}");
        await pgbench.InitializeAsync(options.PgbenchScale, ct);
        Log($"Ceiling for writes: pgbench (TPC-B) -c {clients} -j {threads} -T {seconds} (after a {warm} s warm-up run), {options.Rounds} rounds with OpenTicket");
        await QuietAsync("pgbench TPC-B warm-up");
        await pgbench.WarmUpAsync([], clients, threads, warm, ct);

        var openClients = Channels(address).Select(c => new TicketService.TicketServiceClient(c)).ToArray();
        long opened = 0;
        Func<int, Func<Task>> openCalls = i =>
        {
            var c = openClients[i % openClients.Length];
            var random = new Random(100 + i);
            return async () => await c.OpenTicketAsync(OpenRequest(random, $"open-{runId}-{Interlocked.Increment(ref opened)}"),
                deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: ct);
        };
        // The service in this process was started seconds ago: its code is still being compiled tier by tier (tier 0,
        // instrumented, optimised), which costs as much CPU per call as the service itself. A running service did that
        // long ago, so OpenTicket is driven until the JIT has settled, then measured as usual.
        if (options.JitSettleSeconds > 0)
        {
            report.OpenTicketJitWarmUp = await JitWarmUp.UntilSettledAsync(TimeSpan.FromSeconds(options.JitSettleSeconds), async () =>
            {
                var round = await ClosedLoop.RunAsync("OpenTicket warm-up", clients, options.Connections, TimeSpan.Zero,
                    TimeSpan.FromSeconds(JitWarmUp.RoundSeconds), openCalls, cpu, ct);
                return (round.Calls, TimeSpan.FromSeconds(JitWarmUp.RoundSeconds));
            });
            Log($"  JIT warm-up: {report.OpenTicketJitWarmUp}");
        }
        // pgbench and OpenTicket take turns, and the figures are the medians of the rounds: pgbench alone moved from 1,154
        // to 1,797 tps between runs minutes apart on this machine while OpenTicket stayed within 731-772 calls/s.
        var jitBefore = JitWarmUp.Snapshot();
        for (var round = 1; round <= options.Rounds; round++)
        {
            await QuietAsync($"pgbench TPC-B, round {round}");
            var tpcb = await pgbench.RunAsync("tpc-b", [], clients, threads, seconds, cpu, ct);
            report.PgbenchTpcbRounds.Add(tpcb);
            Log($"  tpc-b: {tpcb.Tps:N0} tps, p50 {tpcb.Latency.P50:0.00} ms, p99 {tpcb.Latency.P99:0.00} ms");
            Log($"OpenTicket, round {round}: {clients} clients, {options.WarmupSeconds} s warm-up + {options.DurationSeconds} s");
            await QuietAsync($"OpenTicket, round {round}");
            var o = await ClosedLoop.RunAsync("OpenTicket", clients, options.Connections, TimeSpan.FromSeconds(options.WarmupSeconds),
                TimeSpan.FromSeconds(options.DurationSeconds), openCalls, cpu, ct);
            report.OpenTicketRounds.Add(o);
            Log($"  OpenTicket: {o.Throughput:N0} calls/s, p50 {o.Latency.P50:0.00} ms, p99 {o.Latency.P99:0.00} ms, errors {o.Errors}" +
                (o.FirstError is null ? "" : $", first error: {o.FirstError}"));
        }
        report.OpenTicketJit = JitWarmUp.Snapshot() - jitBefore;
        report.PgbenchTpcb = report.PgbenchTpcbRounds.OrderBy(r => r.Tps).ElementAt((report.PgbenchTpcbRounds.Count - 1) / 2);
        report.OpenTicket = report.OpenTicketRounds.OrderBy(r => r.Throughput).ElementAt((report.OpenTicketRounds.Count - 1) / 2);
        Log($"  medians: OpenTicket {report.OpenTicket.Throughput:N0} calls/s, pgbench TPC-B {report.PgbenchTpcb.Tps:N0} tps; JIT during the rounds: {report.OpenTicketJit}");
    }

    if (options.Phases.Contains("latency"))
    {
        Log($"Restarting the service with Tickets:SchedulerInterval={options.SchedulerInterval} (the operator's setting for this phase)");
        await BenchHost.StopAsync(service, "the service");
        service = null;
        (service, _, _) = await StartServiceAsync(options.SchedulerInterval);
        await using var probe = await BreachProbe.StartAsync(infra.RabbitMq!.AmqpUri, ct);
        await QuietAsync("breach latency");
        var start = DateTime.UtcNow + TimeSpan.FromSeconds(options.BreachLeadSeconds);
        var step = TimeSpan.FromSeconds(options.BreachSpreadSeconds) / options.BreachTickets;
        var dueTimes = Enumerable.Range(0, options.BreachTickets).Select(i => start + step * i).ToList();
        var before = cpu.Snapshot();
        var batch = await seeder.SeedDueAtAsync(dueTimes, ct);
        var seededBy = DateTime.UtcNow;
        if (seededBy >= start) throw new InvalidOperationException($"Seeding the batch took past its first due time; raise --breach-lead.");
        Log($"  {batch.Count:N0} tickets due from {start:HH:mm:ss.fff} over {options.BreachSpreadSeconds} s; waiting for their SlaBreached");
        var ids = batch.Select(t => t.Id).ToHashSet();
        var last = dueTimes[^1];
        while (probe.CountOf(ids) < ids.Count && DateTime.UtcNow < last + TimeSpan.FromSeconds(options.BreachWaitSeconds))
            await Task.Delay(50, ct);
        var usage = cpu.Snapshot() - before;
        var received = batch.Select(t => probe.TryGet(t.Id, "first_response", out var b) ? b : null).OfType<Breach>().ToList();
        static long Us(TimeSpan t) => (long)(t.TotalMilliseconds * 1000);
        report.BreachLatency = new LatencyPhase(options.SchedulerInterval, batch.Count, options.BreachLeadSeconds, options.BreachSpreadSeconds,
            received.Count, probe.Duplicates, Math.Max(0, (DateTime.UtcNow - last).TotalSeconds),
            Latency.FromMicroseconds(received.Select(b => Us(b.ReceivedAt - b.DueAt)).ToList()),
            Latency.FromMicroseconds(received.Select(b => Us(b.DetectedAt - b.DueAt)).ToList()),
            Latency.FromMicroseconds(received.Select(b => Us(b.ReceivedAt - b.DetectedAt)).ToList()), usage);
        var l = report.BreachLatency;
        Log($"  breach latency: {l.Received}/{l.Tickets} received, due → received p50 {l.DueToReceived.P50:0} ms, p99 {l.DueToReceived.P99:0} ms, " +
            $"max {l.DueToReceived.Max:0} ms (detected p99 {l.DueToDetected.P99:0} ms, relay p99 {l.DetectedToReceived.P99:0} ms)");
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
await ResultsText.SaveAsync(Report.Markdown(report), Report.Json(report), Path.Combine(outDirectory, $"tickets-{runId}.json"), resultsPath,
    options.WriteResults, exitCode == 0);
return exitCode;

async Task<(WebApplication App, TicketService.TicketServiceClient Client, Uri Address)> StartServiceAsync(string schedulerInterval)
{
    var port = BenchHost.FreePort();
    Log($"Starting the tickets service in-process on 127.0.0.1:{port} (Tickets:SchedulerInterval={schedulerInterval})");
    var app = TicketsApp.Build(
    [
        $"--ConnectionStrings:ticketsdb={infra!.Postgres!.ConnectionString("ticketsdb")}",
        $"--ConnectionStrings:cache={infra.Redis!.ConnectionString}",
        $"--ConnectionStrings:messaging={infra.RabbitMq!.AmqpUri}",
        $"--Kestrel:Endpoints:http:Url=http://127.0.0.1:{port}",
        "--Kestrel:Endpoints:http:Protocols=Http2",
        "--OTEL_SERVICE_NAME=tickets",
        $"--Logging:LogLevel:Default={options.ServiceLogLevel}",
        $"--Tickets:SchedulerInterval={schedulerInterval}",
        .. calendarArgs,
        .. BenchAuth.ServiceArgs,
        .. options.ServiceArgs,
    ]);
    await app.StartAsync(ct);
    var address = new Uri($"http://127.0.0.1:{port}");
    return (app, new TicketService.TicketServiceClient(Channels(address)[0]), address);
}

async Task CreateQueuesAsync(TicketService.TicketServiceClient client)
{
    foreach (var team in TicketSeeder.Teams)
    {
        var desk = new UpsertQueueRequest { Name = $"{team}-desk", Team = team };
        desk.AgentIds.AddRange(Enumerable.Range(0, TicketSeeder.AgentsPerQueue).Select(i => $"agent-{team}-desk-{i}"));
        await client.UpsertQueueAsync(desk, cancellationToken: ct);
        await client.UpsertQueueAsync(new UpsertQueueRequest { Name = $"{team}-supervisors", Team = team, SupervisorQueue = true }, cancellationToken: ct);
    }
}

async Task<Pass> TimedPassAsync(SlaScheduler scheduler)
{
    var before = cpu.Snapshot();
    var jit = JitWarmUp.Snapshot();
    var watch = Stopwatch.StartNew();
    var pass = await scheduler.RunOnceAsync(ct);
    var ms = watch.Elapsed.TotalMilliseconds;
    return new Pass(ms, pass.Breaches, pass.NearBreaches, pass.CareCallsOpened, cpu.Snapshot() - before, JitWarmUp.Snapshot() - jit);
}

/// <summary>Waits until the probe received an SlaBreached for every ticket (each is breached once: its first response).</summary>
async Task<Publishing> PublishedAsync(BreachProbe probe, IReadOnlySet<Guid> tickets)
{
    var before = cpu.Snapshot();
    var watch = Stopwatch.StartNew();
    while (probe.CountOf(tickets) < tickets.Count)
    {
        if (watch.Elapsed > TimeSpan.FromSeconds(options.BreachWaitSeconds))
            throw new InvalidOperationException($"Only {probe.CountOf(tickets):N0} of {tickets.Count:N0} SlaBreached arrived within {options.BreachWaitSeconds} s of the pass.");
        await Task.Delay(5, ct);
    }
    return new Publishing(watch.Elapsed.TotalMilliseconds, cpu.Snapshot() - before);
}

GrpcChannel[] Channels(Uri address)
{
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
    Log("  " + line);
}

static OpenTicketRequest OpenRequest(Random random, string key)
{
    var request = new OpenTicketRequest
    {
        CustomerId = new Guid(random.Next(20_000), 0x7ab, 0x4c1, 0, 0, 0, 0, 0, 0, 0, 0).ToString(),
        Type = random.Next(3) == 0 ? TicketType.Complaint : TicketType.Inquiry, Channel = Channel.Phone, Priority = Priority.Normal,
        Subject = "戒指尺寸调整 / ring resizing", Description = "The customer asks how long resizing takes and whether the store can do it this week.",
        Queue = TicketSeeder.Teams[random.Next(TicketSeeder.Teams.Length)] + "-desk", IdempotencyKey = key,
    };
    request.Tags.Add("resize");
    return request;
}

/// <summary>
/// The ceiling: one plain sequential scan of the tickets table answering the scheduler's question (which open tickets have
/// a running target due by now), index scans switched off for this session; the median of the repeats after one warm-up.
/// </summary>
/// <summary>
/// The ceiling: one plain scan of the tickets, <paramref name="repeats"/> times as Postgres plans it and as many times
/// without parallel workers, and the faster of the two (by median) counts. On a 2-core machine starting two workers can
/// cost more than they save (94.9 ms parallel in one run, against 40-55 ms in earlier runs), which would flatter every ratio.
/// </summary>
static async Task<(List<double> Ms, long Rows, string Plan)> ScanAsync(NpgsqlDataSource db, int repeats, CancellationToken ct)
{
    const string sql = """
        SELECT count(*) FROM tickets
        WHERE state BETWEEN 1 AND 4
          AND ((fr_met_at IS NULL AND fr_breached_at IS NULL AND fr_due_at <= $1)
            OR (res_met_at IS NULL AND res_breached_at IS NULL AND res_due_at <= $1))
        """;
    await using var connection = await db.OpenConnectionAsync(ct);
    await using (var off = new NpgsqlCommand("SET enable_indexscan = off; SET enable_bitmapscan = off; SET enable_indexonlyscan = off", connection))
        await off.ExecuteNonQueryAsync(ct);

    async Task<(List<double> Ms, long Rows, string Plan)> MeasureAsync()
    {
        string plan;
        await using (var explain = new NpgsqlCommand("EXPLAIN " + sql, connection) { Parameters = { new() { Value = DateTime.UtcNow } } })
        await using (var reader = await explain.ExecuteReaderAsync(ct))
        {
            var lines = new List<string>();
            while (await reader.ReadAsync(ct)) lines.Add(reader.GetString(0).Trim());
            plan = string.Join(" / ", lines.Where(l => l.Contains("Scan", StringComparison.Ordinal) || l.StartsWith("Workers", StringComparison.Ordinal))
                .Select(l => l.Split("  (")[0].TrimStart('-', '>', ' ')));
        }
        var times = new List<double>();
        long rows = 0;
        for (var i = 0; i <= repeats; i++)
        {
            await using var command = new NpgsqlCommand(sql, connection) { Parameters = { new() { Value = DateTime.UtcNow } } };
            var watch = Stopwatch.StartNew();
            rows = (long)(await command.ExecuteScalarAsync(ct))!;
            if (i > 0) times.Add(watch.Elapsed.TotalMilliseconds);
        }
        return (times, rows, plan);
    }

    var planned = await MeasureAsync();
    await using (var serial = new NpgsqlCommand("SET max_parallel_workers_per_gather = 0", connection)) await serial.ExecuteNonQueryAsync(ct);
    var serialRun = await MeasureAsync();
    var (faster, other, name, otherName) = Stats.Median(serialRun.Ms) < Stats.Median(planned.Ms)
        ? (serialRun, planned, "without parallel workers", "as planned") : (planned, serialRun, "as planned", "without parallel workers");
    return (faster.Ms, faster.Rows, $"{faster.Plan} ({name}; {otherName}, {other.Plan}: median {Stats.Median(other.Ms):0.0} ms)");
}

static async Task ExecuteAsync(NpgsqlDataSource db, string sql, CancellationToken ct)
{
    await using var command = db.CreateCommand(sql);
    command.CommandTimeout = 600;
    await command.ExecuteNonQueryAsync(ct);
}

static async Task<long> ScalarAsync(NpgsqlDataSource db, string sql, CancellationToken ct)
{
    await using var command = db.CreateCommand(sql);
    return Convert.ToInt64(await command.ExecuteScalarAsync(ct), CultureInfo.InvariantCulture);
}

static void Log(string message) => BenchHost.Log(message);
