using System.Diagnostics;
using System.Text.Json;
using System.Threading.Channels;
using Crm.Changes.V1;
using Crm.Customer.V1;
using Crm.IntegrationTests.Customer;
using Crm.IntegrationTests.Support;
using Crm.ServiceDefaults.Security;
using Dapper;
using Grpc.Core;
using Npgsql;
using Xunit.Abstractions;

namespace Crm.IntegrationTests.Platform;

/// <summary>
/// How change feed readers learn of new events now that the writers' transactions no longer NOTIFY (a notifying commit
/// holds a server-wide lock through its WAL flush): in the same process from Outbox.Wake, in other instances from the
/// announcer's NOTIFY sent after the commit. A second customer instance with a one-minute idle poll and its announcer
/// off makes any missing wake-up show as a stall.
/// </summary>
[Collection(SuiteCollection.Name)]
public sealed class ChangeFeedWakeTests(SuiteFixture suite, ITestOutputHelper output)
{
    private static readonly TimeSpan Quick = TimeSpan.FromSeconds(5);

    [Fact]
    public async Task A_reader_wakes_at_a_commit_in_its_own_process_long_before_its_idle_poll()
    {
        await using var quiet = await QuietInstanceAsync();
        await RoundsAsync(writer: quiet, reader: quiet);
    }

    [Fact]
    public async Task A_reader_in_another_instance_wakes_at_the_announcement_of_a_commit()
    {
        await using var quiet = await QuietInstanceAsync();
        await RoundsAsync(writer: suite.Customer, reader: quiet);
    }

    [Fact]
    public async Task A_reader_held_back_by_a_running_transaction_reads_on_when_it_ends_without_writing()
    {
        await using var quiet = await QuietInstanceAsync();
        var feed = new ChangeFeed.ChangeFeedClient(quiet.ChannelFor(Roles.Partner, "erp-wake"));
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var call = feed.WatchChanges(new WatchChangesRequest { FromToken = await LatestTokenAsync(), EventTypes = { "CustomerRegistered" } }, cancellationToken: cts.Token);
        // Not disposed while a read is pending (that throws and hides the failure): disposing the call ends it.
        var events = call.ResponseStream.ReadAllAsync(cts.Token).GetAsyncEnumerator(cts.Token);

        // A transaction with an xid older than the write's: the write's event stays behind the horizon while it runs.
        await using var holder = await suite.CustomerDb.OpenConnectionAsync();
        await using var holding = await holder.BeginTransactionAsync();
        await holder.ExecuteScalarAsync<string>("SELECT pg_current_xact_id()::text", transaction: holding);
        var id = await RegisterAsync(quiet, "held");
        var next = events.MoveNextAsync().AsTask();
        Assert.False(next.IsCompleted, "the event was delivered while an older transaction could still add one before it");

        // It ends without writing an event, so no commit wakes the reader: only its short held poll can.
        await holding.RollbackAsync();
        var watch = Stopwatch.StartNew();
        Assert.True(await next.WaitAsync(Quick));
        while (JsonDocument.Parse(events.Current.Json).RootElement.GetProperty("customer").GetProperty("customerId").GetString() != id)
            Assert.True(await events.MoveNextAsync().AsTask().WaitAsync(Quick));
        output.WriteLine($"delivered {watch.ElapsedMilliseconds} ms after the holder ended (idle poll 60 s)");
        await events.DisposeAsync();
    }

    [Fact]
    public async Task A_writers_transaction_does_not_notify_and_the_announcer_does_after_the_commit()
    {
        await using var quiet = await QuietInstanceAsync();
        await using var listener = await ListenAsync();

        // Through the instance whose announcer is off: the first notification is the marker sent after the write returned.
        await RegisterAsync(quiet, "silent");
        await using (var db = await suite.CustomerDb.OpenConnectionAsync())
            await db.ExecuteAsync("NOTIFY change_events, 'marker'");
        Assert.Equal("marker", await listener.Payloads.ReadAsync(new CancellationTokenSource(Quick).Token));

        // Through the suite's instance: its announcer tells every listener, naming the instance (not empty, not the marker).
        await RegisterAsync(suite.Customer, "announced");
        var announced = await listener.Payloads.ReadAsync(new CancellationTokenSource(Quick).Token);
        Assert.Matches("^[0-9a-f]{32}$", announced);
    }

    /// <summary>Three writes one after the other, each read by a caught-up reader: the second and third wait on a wake-up.</summary>
    private async Task RoundsAsync(ServiceHost writer, ServiceHost reader)
    {
        var start = await LatestTokenAsync();
        var feed = new ChangeFeed.ChangeFeedClient(reader.ChannelFor(Roles.Partner, "erp-wake"));
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var call = feed.WatchChanges(new WatchChangesRequest { FromToken = start, EventTypes = { "CustomerRegistered" } }, cancellationToken: cts.Token);
        var events = call.ResponseStream.ReadAllAsync(cts.Token).GetAsyncEnumerator(cts.Token);
        var took = new List<long>();
        for (var round = 0; round < 3; round++)
        {
            var id = await RegisterAsync(writer, $"round{round}");
            var watch = Stopwatch.StartNew();
            while (true)
            {
                Assert.True(await events.MoveNextAsync());
                if (JsonDocument.Parse(events.Current.Json).RootElement.GetProperty("customer").GetProperty("customerId").GetString() == id) break;
            }
            took.Add(watch.ElapsedMilliseconds);
        }
        output.WriteLine($"delivered after the write returned: {string.Join(", ", took)} ms (idle poll 60 s)");
        Assert.All(took, ms => Assert.InRange(ms, 0, (long)Quick.TotalMilliseconds));
        await events.DisposeAsync();
    }

    private async Task<string> LatestTokenAsync()
    {
        await using var db = await suite.CustomerDb.OpenConnectionAsync();
        return await db.ExecuteScalarAsync<string>("SELECT coalesce(max(tx)::text || '-' || max(id), '') FROM change_events") ?? "";
    }

    private async Task<string> RegisterAsync(ServiceHost through, string tag)
    {
        var partner = new CustomerService.CustomerServiceClient(through.ChannelFor(Roles.Partner, "erp-wake"));
        return (await partner.UpsertCustomerAsync(new UpsertCustomerRequest
        {
            Ref = new ExternalRef { System = "erp", Id = $"WAKE-{tag}-{Guid.NewGuid():N}" },
            Profile = new CustomerProfile { Name = "唤醒客户", Phone = CustomerProfileTests.UniquePhone() },
        })).Customer.Id;
    }

    /// <summary>A second customer instance whose readers poll once a minute and which announces nothing.</summary>
    private Task<ServiceHost> QuietInstanceAsync() =>
        ServiceHost.StartAsync(Crm.Customer.CustomerApp.Build, suite.Infrastructure, "customer", "customerdb",
            extraArgs: ["--ChangeFeed:IdlePoll=00:01:00", "--ChangeFeed:Announce=false"]);

    private async Task<Listener> ListenAsync()
    {
        var connection = new NpgsqlConnection(suite.Infrastructure.Postgres!.ConnectionString("customerdb"));
        await connection.OpenAsync();
        await connection.ExecuteAsync("LISTEN change_events");
        return new Listener(connection);
    }

    private sealed class Listener : IAsyncDisposable
    {
        private readonly NpgsqlConnection _connection;
        private readonly Channel<string> _payloads = Channel.CreateUnbounded<string>();
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _waiting;

        public Listener(NpgsqlConnection connection)
        {
            _connection = connection;
            connection.Notification += (_, e) => _payloads.Writer.TryWrite(e.Payload);
            _waiting = Task.Run(async () =>
            {
                try { while (true) await connection.WaitAsync(_stop.Token); }
                catch (OperationCanceledException) { }
            });
        }

        public ChannelReader<string> Payloads => _payloads.Reader;

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await _waiting;
            await _connection.DisposeAsync();
        }
    }
}
