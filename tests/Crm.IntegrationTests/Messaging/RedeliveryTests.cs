using System.Collections.Concurrent;
using System.Diagnostics;
using Crm.Contracts;
using Crm.IntegrationTests.Support;
using Crm.Loyalty.V1;
using Dapper;
using Npgsql;

namespace Crm.IntegrationTests.Messaging;

/// <summary>
/// Messages are never lost to a retry window: the old consumers retried in memory for about 22 s and then moved the
/// message to an _error queue nobody reads. Both scenarios here last far longer than that.
/// </summary>
[Collection(SuiteCollection.Name)]
public class RedeliveryTests(SuiteFixture suite, Xunit.Abstractions.ITestOutputHelper output)
{
    private readonly Scenario _scenario = new(suite);
    private readonly LoyaltyService.LoyaltyServiceClient _loyalty = new(suite.Loyalty.Channel);

    [Fact]
    public async Task A_refund_published_two_minutes_before_its_order_is_clawed_back_exactly_once_the_order_earns()
    {
        var customerId = await _scenario.NewCustomerAsync();
        var orderId = Guid.NewGuid();
        var refundId = "RF-" + Guid.NewGuid().ToString("N");
        var started = Stopwatch.StartNew();

        // 300.00 of a 1,000.50 order refunded; its OrderPaid comes two minutes later.
        await _scenario.PublishThroughCustomerOutboxAsync(new OrderRefunded(refundId, orderId, Guid.Parse(customerId), "ERP-LATE",
            300.00m, 300.00m, 1000.50m, DateTimeOffset.UtcNow));

        // The refund cannot apply yet: it is parked in loyalty's database and keeps coming back.
        await Scenario.WaitUntilAsync(async () => await ParkedRefundAttemptsAsync(refundId) >= 2, TimeSpan.FromSeconds(30),
            "the refund to be parked and redelivered");

        var gap = TimeSpan.FromMinutes(2) - started.Elapsed;
        if (gap > TimeSpan.Zero) await Task.Delay(gap); // the scenario's gap, not a wait for a result
        var parked = await ParkedRefundAsync(refundId) ?? throw new InvalidOperationException("The parked refund is gone.");
        var attempts = parked.Attempts;
        Assert.Equal("parked", parked.Status);
        Assert.True(attempts >= 10, $"The refund was redelivered only {attempts} times in two minutes.");
        output.WriteLine($"The refund was parked and redelivered {attempts} times in the two minutes before its order");

        await _scenario.PublishThroughCustomerOutboxAsync(new OrderPaid(orderId, Guid.Parse(customerId), "ERP-LATE", null, "store",
            [new OrderLineItem("RING-PT-07", "Platinum ring", 1, 1000.50m)], 1000.50m, DateTimeOffset.UtcNow.AddMinutes(-3)));

        // 1,000 earned, then 300 clawed back so the order keeps floor(1,000.50 − 300.00) = 700.
        await Scenario.WaitUntilAsync(async () =>
        {
            var account = await _loyalty.GetAccountAsync(new GetAccountRequest { CustomerId = customerId });
            return account is { Balance: 700, GrowthValue: 700 };
        }, TimeSpan.FromSeconds(30), "the order to earn 1,000 and the parked refund to claw back 300");

        Assert.Null(await ParkedRefundAsync(refundId));
        await using var connection = await suite.LoyaltyDb.OpenConnectionAsync();
        Assert.Equal(300, await connection.ExecuteScalarAsync<long>("SELECT points_clawed FROM order_earnings WHERE order_id = @orderId", new { orderId }));
        Assert.Equal(1, await connection.ExecuteScalarAsync<int>(
            "SELECT count(*) FROM ledger_entries WHERE source = 'refund' AND source_ref = @refundId", new { refundId }));
        Assert.True((await _loyalty.VerifyAccountAsync(new VerifyAccountRequest { CustomerId = customerId })).Consistent);
    }

    [Fact]
    public async Task A_consumer_database_unavailable_for_60_s_during_a_stream_of_orders_applies_every_order_exactly_once_afterwards()
    {
        // A loyalty service of its own (queues loyaltyoutage-*, database loyaltyoutagedb), so the outage disturbs no other test.
        await using var host = await ServiceHost.StartAsync(args => Crm.Loyalty.LoyaltyApp.Build(args), suite.Infrastructure,
            "loyaltyoutage", "loyaltyoutagedb", connectionName: "loyaltydb");
        // Unpooled: the outage terminates every session of loyaltyoutagedb, the test's own too.
        await using var db = NpgsqlDataSource.Create(suite.Infrastructure.Postgres!.ConnectionString("loyaltyoutagedb") + ";Pooling=false");
        await using var admin = NpgsqlDataSource.Create(suite.Infrastructure.Postgres!.AdminConnectionString);
        await Scenario.WaitForBusAsync(host.Services);

        var customers = new List<string>();
        for (var i = 0; i < 4; i++) customers.Add(await _scenario.NewCustomerAsync());
        var recorded = new ConcurrentDictionary<Guid, (Guid Customer, long Points)>();
        using var stop = new CancellationTokenSource();
        var stream = Task.Run(async () =>
        {
            for (var i = 0; !stop.IsCancellationRequested; i++)
            {
                var customer = customers[i % customers.Count];
                var amount = 100 + i % 50;
                var order = await _scenario.Customers.RecordOrderAsync(Scenario.Order(customer, $"{amount}.90"));
                recorded[Guid.Parse(order.Id)] = (Guid.Parse(customer), amount);
                await Task.Delay(250);
            }
        });

        async Task<long> AppliedAsync()
        {
            await using var connection = await db.OpenConnectionAsync();
            return await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM order_earnings WHERE order_id = ANY(@ids)",
                new { ids = recorded.Keys.ToArray() });
        }

        try
        {
            await Scenario.WaitUntilAsync(async () => await AppliedAsync() >= 3, TimeSpan.FromSeconds(30), "the stream to reach loyaltyoutage");

            await using (var connection = await admin.OpenConnectionAsync())
            {
                await connection.ExecuteAsync("ALTER DATABASE loyaltyoutagedb ALLOW_CONNECTIONS false");
                await connection.ExecuteAsync("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'loyaltyoutagedb'");
            }
            var before = recorded.Count;
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(60));
            }
            finally
            {
                await using var connection = await admin.OpenConnectionAsync();
                await connection.ExecuteAsync("ALTER DATABASE loyaltyoutagedb ALLOW_CONNECTIONS true");
            }
            Assert.True(recorded.Count - before >= 100, $"Only {recorded.Count - before} orders were recorded during the outage.");

            output.WriteLine($"{recorded.Count - before} orders recorded during the 60 s outage of loyaltyoutagedb");
            var afterOutage = recorded.Count;
            await Scenario.WaitUntilAsync(() => Task.FromResult(recorded.Count >= afterOutage + 10), TimeSpan.FromSeconds(30), "more orders after the outage");
        }
        finally
        {
            await stop.CancelAsync();
            await stream;
        }

        var drain = Stopwatch.StartNew();
        await Scenario.WaitUntilAsync(async () => await AppliedAsync() == recorded.Count, TimeSpan.FromSeconds(120),
            $"all {recorded.Count} orders to earn in loyaltyoutagedb");
        output.WriteLine($"All {recorded.Count} orders earned once, {drain.Elapsed.TotalSeconds:0.0} s after the stream stopped");

        await using (var connection = await db.OpenConnectionAsync())
        {
            var ids = recorded.Keys.Select(k => k.ToString()).ToArray();
            Assert.Equal(recorded.Count, await connection.ExecuteScalarAsync<long>(
                "SELECT count(*) FROM ledger_entries WHERE source = 'order' AND source_ref = ANY(@ids)", new { ids }));
            foreach (var group in recorded.Values.GroupBy(v => v.Customer))
                Assert.Equal(group.Sum(v => v.Points), await connection.ExecuteScalarAsync<long>(
                    "SELECT balance FROM accounts WHERE customer_id = @customer", new { customer = group.Key }));
            Assert.Equal(0, await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM parked_messages WHERE status = 'failed'"));
        }
    }

    private async Task<int?> ParkedRefundAttemptsAsync(string refundId) => (await ParkedRefundAsync(refundId))?.Attempts;

    private sealed record ParkedRow(int Attempts, string Status);

    private async Task<ParkedRow?> ParkedRefundAsync(string refundId)
    {
        await using var connection = await suite.LoyaltyDb.OpenConnectionAsync();
        var row = await connection.QuerySingleOrDefaultAsync<ParkedRow>(
            "SELECT attempts, status FROM parked_messages WHERE consumer = 'OrderRefundedConsumer' AND payload->>'refundId' = @refundId",
            new { refundId });
        return row;
    }
}
