using Crm.Common.V1;
using Crm.Contracts;
using Crm.Customer.V1;
using Crm.IntegrationTests.Support;
using Crm.Loyalty.V1;
using Dapper;
using System.Text.Json;
using Google.Protobuf.WellKnownTypes;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;

namespace Crm.IntegrationTests.Loyalty;

/// <summary>Points earned end to end: customer RecordOrder/RefundOrder → outbox → RabbitMQ → loyalty ledger.</summary>
[Collection(SuiteCollection.Name)]
public class EarningTests(SuiteFixture suite)
{
    private readonly CustomerService.CustomerServiceClient _customers = new(suite.Customer.Channel);
    private readonly LoyaltyService.LoyaltyServiceClient _loyalty = new(suite.Loyalty.Channel);

    private async Task<string> NewCustomerAsync() =>
        (await _customers.CreateCustomerAsync(new CreateCustomerRequest
        {
            Profile = new CustomerProfile { Name = "陈静", Phone = Customer.CustomerProfileTests.UniquePhone() },
        })).Id;

    private async Task<Order> PayAsync(string customerId, string amount)
    {
        var order = new RecordOrderRequest
        {
            CustomerId = customerId, ExternalOrderId = "ERP-" + Guid.NewGuid().ToString("N"), Channel = "store",
            AmountPaid = new Money { Amount = amount }, PaidAt = Timestamp.FromDateTime(DateTime.UtcNow.AddMinutes(-1)),
        };
        order.Lines.Add(new OrderLine { Sku = "BANGLE-AU-01", Quantity = 1, UnitPrice = new Money { Amount = amount } });
        return await _customers.RecordOrderAsync(order);
    }

    private async Task<Account> WaitForAccountAsync(string customerId, Func<Account, bool> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            try
            {
                var account = await _loyalty.GetAccountAsync(new GetAccountRequest { CustomerId = customerId });
                if (condition(account)) return account;
                if (DateTime.UtcNow > deadline) throw new TimeoutException($"Timed out waiting for {what}; account is {account}");
            }
            catch (Grpc.Core.RpcException e) when (e.StatusCode == Grpc.Core.StatusCode.NotFound && DateTime.UtcNow < deadline) { }
            await Task.Delay(50);
        }
    }

    private async Task AssertConsistentAsync(string customerId)
    {
        var check = await _loyalty.VerifyAccountAsync(new VerifyAccountRequest { CustomerId = customerId });
        Assert.True(check.Consistent, check.ToString());
    }

    [Fact]
    public async Task Registering_a_customer_opens_an_S1_account_once()
    {
        var customerId = await NewCustomerAsync();
        var account = await WaitForAccountAsync(customerId, _ => true, "the account opened by CustomerRegistered");
        Assert.Equal((0L, 0L, "S1", 8_001L), (account.Balance, account.GrowthValue, account.Tier.Code, account.GrowthToNextTier));

        // A redelivery: the very message the customer service published (its outbox row id is the message id), again.
        Guid messageId;
        CustomerRegistered registered;
        await using (var customerDb = await suite.CustomerDb.OpenConnectionAsync())
        {
            var row = await customerDb.QuerySingleAsync<(Guid Id, string Payload)>("""
                SELECT message_id, payload::text FROM change_events
                WHERE event_type = 'CustomerRegistered' AND payload->'customer'->>'customerId' = @customerId
                """, new { customerId });
            messageId = row.Id;
            registered = JsonSerializer.Deserialize<CustomerRegistered>(row.Payload, new JsonSerializerOptions(JsonSerializerDefaults.Web))!;
        }
        await using var db = await suite.LoyaltyDb.OpenConnectionAsync();
        var redeliveredAt = await db.ExecuteScalarAsync<DateTime>("SELECT clock_timestamp()");
        var bus = suite.Loyalty.Services.GetRequiredService<IBus>();
        using var consumed = new ConsumedMessages(bus);
        await bus.Publish(registered, ctx => ctx.MessageId = messageId);
        await consumed.WaitAsync(messageId, 1, "the redelivered CustomerRegistered");

        // One account, as it was, and the registration applied once: the inbox holds the id from the first delivery.
        Assert.Equal(account, await _loyalty.GetAccountAsync(new GetAccountRequest { CustomerId = customerId }));
        Assert.Equal(1, await db.ExecuteScalarAsync<long>("SELECT count(*) FROM accounts WHERE customer_id = @id", new { id = Guid.Parse(customerId) }));
        var applied = await db.QueryAsync<DateTime>(
            "SELECT processed_at FROM inbox_messages WHERE message_id = @messageId AND consumer = 'CustomerRegisteredConsumer'", new { messageId });
        Assert.True(Assert.Single(applied) < redeliveredAt, "the inbox entry is the first delivery's: the redelivery was not applied again");
    }

    [Fact]
    public async Task A_paid_order_of_10000_50_yuan_earns_exactly_10000_points_and_growth_value()
    {
        var customerId = await NewCustomerAsync();
        await PayAsync(customerId, "10000.50");

        var account = await WaitForAccountAsync(customerId, a => a.Balance > 0, "the order's points");
        Assert.Equal((10_000L, 10_000L, "S2"), (account.Balance, account.GrowthValue, account.Tier.Code));
        Assert.Equal(("S3", 70_001L), (account.NextTier.Code, account.GrowthToNextTier));
        await AssertConsistentAsync(customerId);
    }

    [Fact]
    public async Task Crossing_8001_growth_moves_S1_to_S2_with_one_TierChanged()
    {
        await using var probe = await EventProbe.StartAsync(suite.Infrastructure.RabbitMq!.AmqpUri, "Crm.Contracts:TierChanged");
        var customerId = await NewCustomerAsync();
        var outbox = await Markers.PositionAsync(suite.LoyaltyDb);
        await PayAsync(customerId, "7999.00");
        var before = await WaitForAccountAsync(customerId, a => a.GrowthValue == 7_999, "7,999 growth value");
        Assert.Equal(("S1", 2L), (before.Tier.Code, before.GrowthToNextTier));

        var second = await PayAsync(customerId, "2.00");
        var after = await WaitForAccountAsync(customerId, a => a.GrowthValue == 8_001, "8,001 growth value");
        Assert.Equal("S2", after.Tier.Code);

        await probe.WaitUntilAsync(() => probe.For("customerId", customerId).Count >= 1, TimeSpan.FromSeconds(15), "TierChanged");

        // Marker: everything loyalty wrote so far is confirmed, then a refund of the 2 yuan moves the tier back, which
        // publishes the next TierChanged on the same path. A duplicate of the first would be on the probe's queue before it.
        await Markers.DrainAsync(suite.LoyaltyDb, outbox);
        await _customers.RefundOrderAsync(new RefundOrderRequest { RefundId = "RF-" + Guid.NewGuid(), OrderId = second.Id });
        await probe.WaitUntilAsync(() => probe.For("customerId", customerId).Any(e => e.Message.GetProperty("reason").GetString() == "refund"),
            TimeSpan.FromSeconds(15), "the marker TierChanged (refund)");
        var changes = probe.For("customerId", customerId).Select(e => e.Message).ToList();
        Assert.Equal([("S1", "S2", "order", 8001L), ("S2", "S1", "refund", 7999L)], changes.Select(m =>
            (m.GetProperty("oldTier").GetString(), m.GetProperty("newTier").GetString(),
             m.GetProperty("reason").GetString(), m.GetProperty("growthValue").GetInt64())).ToList());
        Assert.True(changes[0].GetProperty("sequence").GetInt64() < changes[1].GetProperty("sequence").GetInt64());
    }

    [Fact]
    public async Task The_same_OrderPaid_delivered_three_times_earns_once()
    {
        var customerId = Guid.NewGuid();
        var paid = new OrderPaid(Guid.NewGuid(), customerId, "ERP-DUP-" + Guid.NewGuid().ToString("N")[..8], "SZ-01", "store",
            [new OrderLineItem("RING-01", null, 1, 880.00m)], 880.00m, DateTimeOffset.UtcNow);
        var bus = suite.Loyalty.Services.GetRequiredService<IBus>();
        using var consumed = new ConsumedMessages(bus);
        var messageId = NewId.NextGuid();
        var republishedId = NewId.NextGuid();

        await bus.Publish(paid, ctx => ctx.MessageId = messageId);
        await bus.Publish(paid, ctx => ctx.MessageId = messageId);
        await bus.Publish(paid, ctx => ctx.MessageId = republishedId); // a re-publish under a new message id: the order itself is the guard

        // Loyalty handles messages concurrently, so the marker is its own word that it finished each of the three copies.
        await consumed.WaitAsync(messageId, 2, "both deliveries of the same message id");
        await consumed.WaitAsync(republishedId, 1, "the re-publish under a new message id");
        var ledger = await _loyalty.ListLedgerAsync(new ListLedgerRequest { CustomerId = customerId.ToString() });
        Assert.Equal(880, Assert.Single(ledger.Entries).Points);
        Assert.Equal(880, (await _loyalty.GetAccountAsync(new GetAccountRequest { CustomerId = customerId.ToString() })).Balance);
    }

    [Fact]
    public async Task Refunding_a_spent_order_makes_the_balance_negative_and_the_next_earning_repays_it()
    {
        var customerId = await NewCustomerAsync();
        var order = await PayAsync(customerId, "1000.00");
        await WaitForAccountAsync(customerId, a => a.Balance == 1000, "1,000 points");
        await _loyalty.AdjustPointsAsync(new AdjustPointsRequest
        {
            CustomerId = customerId, Points = -800, Reason = "Gift redeemed at the counter", IdempotencyKey = Guid.NewGuid().ToString(),
        });

        await _customers.RefundOrderAsync(new RefundOrderRequest { RefundId = "RF-" + Guid.NewGuid(), OrderId = order.Id });
        var owed = await WaitForAccountAsync(customerId, a => a.GrowthValue == 0, "the claw-back");
        Assert.Equal(-800, owed.Balance);

        await PayAsync(customerId, "500.00");
        var repaid = await WaitForAccountAsync(customerId, a => a.GrowthValue == 500, "the next earning");
        Assert.Equal(-300, repaid.Balance);
        await AssertConsistentAsync(customerId);

        // A redemption-style deduction cannot go below zero.
        var ex = await Rpc.FailsWith(Grpc.Core.StatusCode.FailedPrecondition, () => _loyalty.AdjustPointsAsync(new AdjustPointsRequest
        {
            CustomerId = customerId, Points = -1, Reason = "test", IdempotencyKey = Guid.NewGuid().ToString(),
        }).ResponseAsync);
        Assert.Contains("has -300", ex.Status.Detail);
    }

    [Fact]
    public async Task A_refund_below_the_threshold_drops_the_tier()
    {
        await using var probe = await EventProbe.StartAsync(suite.Infrastructure.RabbitMq!.AmqpUri, "Crm.Contracts:TierChanged");
        var customerId = await NewCustomerAsync();
        var order = await PayAsync(customerId, "8500.00");
        await WaitForAccountAsync(customerId, a => a.Tier.Code == "S2", "S2");

        await _customers.RefundOrderAsync(new RefundOrderRequest { RefundId = "RF-" + Guid.NewGuid(), OrderId = order.Id, Amount = new Money { Amount = "600.00" } });
        var after = await WaitForAccountAsync(customerId, a => a.GrowthValue == 7_900, "the partial claw-back");
        Assert.Equal(("S1", 7_900L), (after.Tier.Code, after.Balance));

        await probe.WaitUntilAsync(() => probe.For("customerId", customerId).Count >= 2, TimeSpan.FromSeconds(15), "two TierChanged");
        Assert.Contains(probe.For("customerId", customerId), e =>
            e.Message.GetProperty("newTier").GetString() == "S1" && e.Message.GetProperty("reason").GetString() == "refund");
        await AssertConsistentAsync(customerId);
    }

    [Fact]
    public async Task Bad_loyalty_input_gets_precise_errors_and_writes_nothing()
    {
        var customerId = await NewCustomerAsync();
        await PayAsync(customerId, "100.00");
        await WaitForAccountAsync(customerId, a => a.Balance == 100, "100 points");

        var zero = await Rpc.FailsWith(Grpc.Core.StatusCode.InvalidArgument, () => _loyalty.AdjustPointsAsync(
            new AdjustPointsRequest { CustomerId = customerId, Points = 0, Reason = "", IdempotencyKey = "" }).ResponseAsync);
        Assert.Equal(["idempotency_key", "points", "reason"], zero.Fields());

        var survey = await Rpc.FailsWith(Grpc.Core.StatusCode.InvalidArgument, () => _loyalty.RegisterActivityAsync(
            new RegisterActivityRequest { CustomerId = customerId, Type = ActivityType.Survey }).ResponseAsync);
        Assert.Equal(["activity_id"], survey.Fields());

        await Rpc.FailsWith(Grpc.Core.StatusCode.NotFound, () =>
            _loyalty.GetAccountAsync(new GetAccountRequest { CustomerId = Guid.NewGuid().ToString() }).ResponseAsync);
        await Rpc.FailsWith(Grpc.Core.StatusCode.InvalidArgument, () =>
            _loyalty.ListExpiringPointsAsync(new ListExpiringPointsRequest { WithinDays = 0 }).ResponseAsync);

        var entries = await _loyalty.ListLedgerAsync(new ListLedgerRequest { CustomerId = customerId });
        Assert.Single(entries.Entries);
        Assert.Equal(100, (await _loyalty.GetAccountAsync(new GetAccountRequest { CustomerId = customerId })).Balance);
    }

    [Fact]
    public async Task Activities_pay_once_and_count_toward_growth()
    {
        var customerId = await NewCustomerAsync();
        // Member calls need the account CustomerRegistered opens; they never open one themselves.
        await WaitForAccountAsync(customerId, _ => true, "the account opened by CustomerRegistered");
        var first = await _loyalty.RegisterActivityAsync(new RegisterActivityRequest { CustomerId = customerId, Type = ActivityType.ProfileCompletion });
        Assert.Equal((100L, 100L), (first.Points, first.GrowthValue));
        await Rpc.FailsWith(Grpc.Core.StatusCode.AlreadyExists, () =>
            _loyalty.RegisterActivityAsync(new RegisterActivityRequest { CustomerId = customerId, Type = ActivityType.ProfileCompletion }).ResponseAsync);

        await _loyalty.RegisterActivityAsync(new RegisterActivityRequest { CustomerId = customerId, Type = ActivityType.Survey, ActivityId = "nps-2026-q4" });
        await _loyalty.RegisterActivityAsync(new RegisterActivityRequest { CustomerId = customerId, Type = ActivityType.Survey, ActivityId = "nps-2027-q1" });
        await Rpc.FailsWith(Grpc.Core.StatusCode.AlreadyExists, () =>
            _loyalty.RegisterActivityAsync(new RegisterActivityRequest { CustomerId = customerId, Type = ActivityType.Survey, ActivityId = "nps-2026-q4" }).ResponseAsync);

        var account = await _loyalty.GetAccountAsync(new GetAccountRequest { CustomerId = customerId });
        Assert.Equal((140L, 140L), (account.Balance, account.GrowthValue));
    }
}
