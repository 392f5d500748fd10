using System.Collections.Concurrent;
using Crm.IntegrationTests.Support;
using Crm.Messaging;
using Dapper;
using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;

namespace Crm.IntegrationTests.Messaging;

public sealed record InboxPing(Guid Key, bool FailFirstAttempt);

/// <summary>Applies a ping by inserting a row; the inbox must make that happen once per message id.</summary>
public sealed class InboxPingConsumer(NpgsqlDataSource dataSource) : InboxConsumer<InboxPing>(dataSource)
{
    public static readonly ConcurrentDictionary<Guid, int> Attempts = new();

    protected override async Task HandleAsync(ConsumeContext<InboxPing> context, NpgsqlTransaction transaction)
    {
        await transaction.Connection!.ExecuteAsync("INSERT INTO ping_effects (key) VALUES (@Key)", new { context.Message.Key }, transaction);
        if (Attempts.AddOrUpdate(context.Message.Key, 1, (_, n) => n + 1) == 1 && context.Message.FailFirstAttempt)
            throw new InvalidOperationException("Simulated failure after the effect was written; the transaction must roll back.");
    }
}

[Collection(SuiteCollection.Name)]
public class InboxTests(SuiteFixture suite) : IAsyncLifetime
{
    private IHost _host = null!;
    private NpgsqlDataSource _db = null!;

    public async Task InitializeAsync()
    {
        var infra = suite.Infrastructure;
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ConnectionStrings:inboxtestdb"] = infra.Postgres!.ConnectionString("inboxtestdb"),
            ["ConnectionStrings:messaging"] = infra.RabbitMq!.AmqpUri.ToString(),
            ["OTEL_SERVICE_NAME"] = "inboxtest",
        });
        builder.AddNpgsqlDataSource("inboxtestdb");
        // One message at a time, so deliveries are handled in the order they were published.
        builder.AddMessaging("messaging", bus => bus.AddConsumer<InboxPingConsumer>().Endpoint(e => e.ConcurrentMessageLimit = 1));
        _host = builder.Build();
        _db = _host.Services.GetRequiredService<NpgsqlDataSource>();
        await _host.StartAsync(); // applies the outbox/inbox migrations
        await _db.OpenConnection().ExecuteAsync("CREATE TABLE IF NOT EXISTS ping_effects (key uuid NOT NULL)");
    }

    public async Task DisposeAsync()
    {
        await _host.StopAsync();
        _host.Dispose();
    }

    [Fact]
    public async Task A_message_delivered_twice_is_applied_once()
    {
        var bus = _host.Services.GetRequiredService<IBus>();
        var key = Guid.NewGuid();
        var messageId = NewId.NextGuid();

        var after = Guid.NewGuid();

        await bus.Publish(new InboxPing(key, false), ctx => ctx.MessageId = messageId);
        await bus.Publish(new InboxPing(key, false), ctx => ctx.MessageId = messageId);
        await bus.Publish(new InboxPing(after, false));

        // The third message is handled after both copies of the first.
        await WaitForAsync(async () => await EffectsAsync(after) == 1, "the message published after the duplicate");
        Assert.Equal(1, await EffectsAsync(key));
        Assert.Equal(1, InboxPingConsumer.Attempts[key]);
    }

    [Fact]
    public async Task A_failed_attempt_rolls_back_its_effect_and_the_retry_applies_it_once()
    {
        var bus = _host.Services.GetRequiredService<IBus>();
        var key = Guid.NewGuid();

        await bus.Publish(new InboxPing(key, FailFirstAttempt: true));

        await WaitForAsync(async () => await EffectsAsync(key) == 1, "the retry to apply the ping");
        Assert.Equal(2, InboxPingConsumer.Attempts[key]);
    }

    private async Task<int> EffectsAsync(Guid key) =>
        await _db.OpenConnection().ExecuteScalarAsync<int>("SELECT count(*) FROM ping_effects WHERE key = @key", new { key });

    private static Task WaitForAsync(Func<bool> condition, string what) => WaitForAsync(() => Task.FromResult(condition()), what);

    private static async Task WaitForAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"Timed out waiting for {what}.");
            await Task.Delay(50);
        }
    }
}
