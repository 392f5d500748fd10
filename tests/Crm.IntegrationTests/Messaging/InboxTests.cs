using System.Collections.Concurrent;
using Crm.IntegrationTests.Support;
using Crm.Messaging;
using Crm.Ops.V1;
using Dapper;
using Grpc.Core;
using MassTransit;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Crm.IntegrationTests.Messaging;

public sealed record InboxPing(Guid Key, bool FailFirstAttempt, bool FailUntilReleased = false);

/// <summary>Applies a ping by inserting a row; the inbox must make that happen once per message id.</summary>
public sealed class InboxPingConsumer(NpgsqlDataSource dataSource) : InboxConsumer<InboxPing>(dataSource)
{
    public static readonly ConcurrentDictionary<Guid, int> Attempts = new();
    /// <summary>Keys whose FailUntilReleased pings may now apply.</summary>
    public static readonly ConcurrentDictionary<Guid, bool> Released = new();

    protected override async Task HandleAsync(ConsumeContext<InboxPing> context, NpgsqlTransaction transaction)
    {
        var ping = context.Message;
        await transaction.Connection!.ExecuteAsync("INSERT INTO ping_effects (key) VALUES (@Key)", new { ping.Key }, transaction);
        var attempt = Attempts.AddOrUpdate(ping.Key, 1, (_, n) => n + 1);
        if (attempt == 1 && ping.FailFirstAttempt)
            throw new InvalidOperationException("Simulated failure after the effect was written; the transaction must roll back.");
        if (ping.FailUntilReleased && !Released.ContainsKey(ping.Key))
            throw new InvalidOperationException($"Simulated failure {attempt} until the test releases {ping.Key}.");
    }
}

/// <summary>
/// The inbox, parking and inbox pruning on a small service of their own (inboxtestdb, queue inboxtest-inbox-ping),
/// built like the real services (AddServiceDefaults, AddMessaging, gRPC defaults) so it serves crm.ops.v1.MessagingAdmin.
/// </summary>
[Collection(SuiteCollection.Name)]
public class InboxTests(SuiteFixture suite) : IAsyncLifetime
{
    private ServiceHost _host = null!;
    private NpgsqlDataSource _db = null!;

    private static WebApplication Build(string[] args)
    {
        var builder = WebApplication.CreateBuilder(args);
        builder.AddServiceDefaults();
        builder.AddNpgsqlDataSource("inboxtestdb");
        // One message at a time, so deliveries are handled in the order they were published.
        builder.AddMessaging("messaging", bus => bus.AddConsumer<InboxPingConsumer>().Endpoint(e => e.ConcurrentMessageLimit = 1));
        builder.AddGrpcDefaults();
        var app = builder.Build();
        app.MapGrpcDefaults();
        app.MapDefaultEndpoints();
        return app;
    }

    public async Task InitializeAsync()
    {
        _host = await ServiceHost.StartAsync(Build, suite.Infrastructure, "inboxtest", "inboxtestdb", extraArgs:
        [
            "--Messaging:Parking:FirstDelay=00:00:00.200",
            "--Messaging:Parking:MaxDelay=00:00:00.500",
            "--Messaging:Parking:MaxAttempts=4",
            "--Messaging:Parking:SweepInterval=00:00:00.100",
            "--Messaging:Inbox:Retention=2.00:00:00",
            "--Messaging:Inbox:PruneInterval=00:00:00.500",
        ]); // applies the outbox/inbox migrations
        _db = _host.Services.GetRequiredService<NpgsqlDataSource>();
        await Scenario.WaitForBusAsync(_host.Services);
        await using var connection = await _db.OpenConnectionAsync();
        await connection.ExecuteAsync("CREATE TABLE IF NOT EXISTS ping_effects (key uuid NOT NULL)");
    }

    public async Task DisposeAsync() => await _host.DisposeAsync();

    private IBus Bus => _host.Services.GetRequiredService<IBus>();

    [Fact]
    public async Task A_message_delivered_twice_is_applied_once()
    {
        var key = Guid.NewGuid();
        var messageId = NewId.NextGuid();
        var after = Guid.NewGuid();

        // The same message id twice: what a broker redelivery or a relay publishing again looks like.
        await Bus.Publish(new InboxPing(key, false), ctx => ctx.MessageId = messageId);
        await Bus.Publish(new InboxPing(key, false), ctx => ctx.MessageId = messageId);
        await Bus.Publish(new InboxPing(after, false));

        // The third message is handled after both copies of the first.
        await WaitForAsync(async () => await EffectsAsync(after) == 1, "the message published after the duplicate");
        Assert.Equal(1, await EffectsAsync(key));
        Assert.Equal(1, InboxPingConsumer.Attempts[key]);
    }

    [Fact]
    public async Task A_failed_attempt_rolls_back_its_effect_and_the_retry_applies_it_once()
    {
        var key = Guid.NewGuid();

        await Bus.Publish(new InboxPing(key, FailFirstAttempt: true));

        await WaitForAsync(async () => await EffectsAsync(key) == 1, "the retry to apply the ping");
        Assert.Equal(2, InboxPingConsumer.Attempts[key]);
    }

    [Fact]
    public async Task A_message_that_keeps_failing_is_parked_and_swept_back_with_its_message_id_until_it_applies_once()
    {
        var key = Guid.NewGuid();
        var messageId = NewId.NextGuid();

        await Bus.Publish(new InboxPing(key, false, FailUntilReleased: true), ctx => ctx.MessageId = messageId);

        // Parked after the quick retries, then swept back and failing again: attempts grow in the consumer's database.
        await WaitForAsync(async () => await ParkedAttemptsAsync(messageId) >= 2, "the ping to be parked and redelivered");
        Assert.Equal(0, await EffectsAsync(key));

        InboxPingConsumer.Released[key] = true;
        await WaitForAsync(async () => await EffectsAsync(key) == 1, "the next redelivery to apply the ping");
        Assert.Null(await ParkedAttemptsAsync(messageId)); // deleted in the transaction that applied it
        await using var connection = await _db.OpenConnectionAsync();
        Assert.Equal(1, await connection.ExecuteScalarAsync<int>(
            "SELECT count(*) FROM inbox_messages WHERE message_id = @messageId", new { messageId }));
    }

    [Fact]
    public async Task After_its_attempts_a_message_is_failed_for_good_and_an_operator_lists_and_replays_it()
    {
        var admin = new MessagingAdmin.MessagingAdminClient(_host.Channel);
        var key = Guid.NewGuid();
        var messageId = NewId.NextGuid();

        await Bus.Publish(new InboxPing(key, false, FailUntilReleased: true), ctx => ctx.MessageId = messageId);

        var failed = await WaitForAsync(async () =>
        {
            var page = await admin.ListParkedMessagesAsync(new ListParkedMessagesRequest { Status = ParkedStatus.Failed, Consumer = nameof(InboxPingConsumer) });
            return page.Messages.FirstOrDefault(m => m.MessageId == messageId.ToString());
        }, "the ping to fail 4 times and be marked failed");
        Assert.Equal(4, failed.Attempts);
        Assert.Equal("inboxtest-inbox-ping", failed.Queue);
        Assert.Contains("until the test releases", failed.LastError);
        Assert.Contains(key.ToString(), failed.Payload);

        // Failed for good: the sweeper leaves it alone, the health check asks for an operator.
        var health = await _host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync(r => r.Name == "messaging");
        Assert.Equal(HealthStatus.Degraded, health.Entries["messaging"].Status);
        Assert.True((long)health.Entries["messaging"].Data["failed"] >= 1);

        // The operator fixes the cause and replays it.
        InboxPingConsumer.Released[key] = true;
        Assert.Equal(1, (await admin.ReplayParkedMessageAsync(new ReplayParkedMessageRequest { Id = failed.Id })).Replayed);
        await WaitForAsync(async () => await EffectsAsync(key) == 1, "the replayed ping to apply");
        var after = await admin.ListParkedMessagesAsync(new ListParkedMessagesRequest { Consumer = nameof(InboxPingConsumer) });
        Assert.DoesNotContain(after.Messages, m => m.MessageId == messageId.ToString());

        // Bad input is INVALID_ARGUMENT / NOT_FOUND, never INTERNAL.
        await Rpc.FailsWith(StatusCode.InvalidArgument, () => admin.ListParkedMessagesAsync(new ListParkedMessagesRequest { PageToken = "x" }).ResponseAsync);
        await Rpc.FailsWith(StatusCode.InvalidArgument, () => admin.ListParkedMessagesAsync(new ListParkedMessagesRequest { PageSize = 100_000 }).ResponseAsync);
        await Rpc.FailsWith(StatusCode.InvalidArgument, () => admin.ReplayParkedMessageAsync(new ReplayParkedMessageRequest { Id = -1 }).ResponseAsync);
        await Rpc.FailsWith(StatusCode.NotFound, () => admin.ReplayParkedMessageAsync(new ReplayParkedMessageRequest { Id = long.MaxValue }).ResponseAsync);
    }

    [Fact]
    public async Task Inbox_entries_older_than_the_retention_are_pruned_in_the_background_and_newer_ones_kept()
    {
        var (old, recent) = (Guid.NewGuid(), Guid.NewGuid());
        await using (var connection = await _db.OpenConnectionAsync())
            await connection.ExecuteAsync("""
                INSERT INTO inbox_messages (message_id, consumer, processed_at) VALUES
                    (@old, 'PruneTest', now() - interval '3 days'), (@recent, 'PruneTest', now() - interval '1 day')
                """, new { old, recent });

        // Retention is 2 days here; the pruner runs every 0.5 s.
        await WaitForAsync(async () => !await InboxHasAsync(old), "the pruner to forget the 3-day-old entry");
        Assert.True(await InboxHasAsync(recent));
    }

    [Fact]
    public void MassTransit_usage_telemetry_is_off()
    {
        Assert.False(_host.Services.GetRequiredService<IOptions<UsageTelemetryOptions>>().Value.Enabled);
    }

    private async Task<bool> InboxHasAsync(Guid messageId)
    {
        await using var connection = await _db.OpenConnectionAsync();
        return await connection.ExecuteScalarAsync<bool>("SELECT EXISTS (SELECT 1 FROM inbox_messages WHERE message_id = @messageId)", new { messageId });
    }

    private async Task<int?> ParkedAttemptsAsync(Guid messageId)
    {
        await using var connection = await _db.OpenConnectionAsync();
        return await connection.ExecuteScalarAsync<int?>("SELECT attempts FROM parked_messages WHERE message_id = @messageId", new { messageId });
    }

    private async Task<int> EffectsAsync(Guid key)
    {
        await using var connection = await _db.OpenConnectionAsync();
        return await connection.ExecuteScalarAsync<int>("SELECT count(*) FROM ping_effects WHERE key = @key", new { key });
    }

    private static async Task WaitForAsync(Func<Task<bool>> condition, string what) =>
        await WaitForAsync(async () => await condition() ? "yes" : null, what);

    private static async Task<T> WaitForAsync<T>(Func<Task<T?>> probe, string what) where T : class
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            if (await probe() is { } found) return found;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"Timed out waiting for {what}.");
            await Task.Delay(50);
        }
    }
}
