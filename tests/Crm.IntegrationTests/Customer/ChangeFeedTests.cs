using System.Diagnostics;
using System.Text.Json;
using Crm.Changes.V1;
using Crm.Common.V1;
using Crm.Customer.V1;
using Crm.IntegrationTests.Support;
using Crm.ServiceDefaults.Security;
using Dapper;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Npgsql;
using Xunit.Abstractions;

namespace Crm.IntegrationTests.Customer;

/// <summary>The change feed: a partner reads the service's committed events in order, and a resumed stream misses and repeats nothing.</summary>
[Collection(SuiteCollection.Name)]
public sealed class ChangeFeedTests(SuiteFixture suite, ITestOutputHelper output)
{
    [Fact]
    public async Task A_reconnect_with_the_last_token_continues_without_gap_or_repeat_and_gets_what_was_committed_meanwhile()
    {
        var partner = new CustomerService.CustomerServiceClient(suite.Customer.ChannelFor(Roles.Partner, "erp-feed"));
        var feed = new ChangeFeed.ChangeFeedClient(suite.Customer.ChannelFor(Roles.Partner, "erp-feed"));
        string start;
        await using (var db = await suite.CustomerDb.OpenConnectionAsync())
            start = await db.ExecuteScalarAsync<string>("SELECT coalesce(max(tx)::text || '-' || max(id), '') FROM change_events") ?? "";
        var run = Guid.NewGuid().ToString("N")[..8];
        async Task<string> Register(int i) => (await partner.UpsertCustomerAsync(new UpsertCustomerRequest
        {
            Ref = new ExternalRef { System = "erp", Id = $"FEED-{run}-{i}" },
            Profile = new CustomerProfile { Name = $"订阅客户{i}", Phone = CustomerProfileTests.UniquePhone() },
        })).Customer.Id;

        var ids = new List<string>();
        for (var i = 0; i < 3; i++) ids.Add(await Register(i));

        // First connection: the three registrations, in the order they were made; then hang up after the second.
        var first = new List<ChangeEvent>();
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
        using (var call = feed.WatchChanges(new WatchChangesRequest { FromToken = start, EventTypes = { "CustomerRegistered" } }, cancellationToken: cts.Token))
        {
            var watch = Stopwatch.StartNew();
            await foreach (var e in call.ResponseStream.ReadAllAsync(cts.Token))
            {
                if (!ids.Contains(CustomerId(e))) continue; // someone else's customer
                first.Add(e);
                if (first.Count == 3) break;
            }
            output.WriteLine($"three events in {watch.ElapsedMilliseconds} ms");
        }
        Assert.Equal(ids, first.Select(CustomerId));
        Assert.All(first, e => Assert.Equal("CustomerRegistered", e.EventType));

        // Two more while nobody listens; then resume after the second event: the third, then the two new ones, nothing else.
        ids.Add(await Register(3));
        ids.Add(await Register(4));
        var resumed = new List<ChangeEvent>();
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
        using (var call = feed.WatchChanges(new WatchChangesRequest { FromToken = first[1].Token, EventTypes = { "CustomerRegistered" } }, cancellationToken: cts.Token))
        {
            await foreach (var e in call.ResponseStream.ReadAllAsync(cts.Token))
            {
                if (!ids.Contains(CustomerId(e))) continue;
                resumed.Add(e);
                if (resumed.Count == 3) break;
            }
        }
        Assert.Equal(ids[2..], resumed.Select(CustomerId));
        Assert.Equal(first[2].Token, resumed[0].Token);
        Assert.Equal(first[2].MessageId, resumed[0].MessageId);

        // A token it never handed out is INVALID_ARGUMENT; only partners (and admin, system) may read the feed.
        using (var bad = feed.WatchChanges(new WatchChangesRequest { FromToken = "yesterday" }))
            Assert.Equal(StatusCode.InvalidArgument, (await Assert.ThrowsAsync<RpcException>(() => bad.ResponseStream.MoveNext())).StatusCode);
        var store = new ChangeFeed.ChangeFeedClient(suite.Customer.ChannelFor(Roles.Store, "till-1"));
        using (var denied = store.WatchChanges(new WatchChangesRequest()))
            Assert.Equal(StatusCode.PermissionDenied, (await Assert.ThrowsAsync<RpcException>(() => denied.ResponseStream.MoveNext())).StatusCode);
    }

    [Fact]
    public async Task An_open_transaction_of_another_database_or_of_the_outbox_relay_does_not_hold_events_back()
    {
        // Both take a transaction id before the new event's and keep it open for the whole test: neither can add a
        // change event to this database, so the feed must not wait for them (the relay keeps its transaction open
        // while the broker confirms a batch).
        await using var loyalty = await suite.LoyaltyDb.OpenConnectionAsync();
        await using var loyaltyTx = await loyalty.BeginTransactionAsync();
        await loyalty.ExecuteScalarAsync<string>("SELECT pg_current_xact_id()::text", transaction: loyaltyTx);
        var relayLike = new NpgsqlConnectionStringBuilder(suite.Infrastructure.Postgres!.ConnectionString("customerdb")) { ApplicationName = "customer-outbox-relay" };
        await using var relay = new NpgsqlConnection(relayLike.ConnectionString);
        await relay.OpenAsync();
        await using var relayTx = await relay.BeginTransactionAsync();
        await relay.ExecuteScalarAsync<string>("SELECT pg_current_xact_id()::text", transaction: relayTx);

        string start;
        await using (var db = await suite.CustomerDb.OpenConnectionAsync())
            start = await db.ExecuteScalarAsync<string>("SELECT coalesce(max(tx)::text || '-' || max(id), '') FROM change_events") ?? "";
        var partner = new CustomerService.CustomerServiceClient(suite.Customer.ChannelFor(Roles.Partner, "erp-feed"));
        var feed = new ChangeFeed.ChangeFeedClient(suite.Customer.ChannelFor(Roles.Partner, "erp-feed"));
        var id = (await partner.UpsertCustomerAsync(new UpsertCustomerRequest
        {
            Ref = new ExternalRef { System = "erp", Id = "FEED-OPEN-" + Guid.NewGuid().ToString("N")[..8] },
            Profile = new CustomerProfile { Name = "订阅客户", Phone = CustomerProfileTests.UniquePhone() },
        })).Customer.Id;

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var call = feed.WatchChanges(new WatchChangesRequest { FromToken = start, EventTypes = { "CustomerRegistered" } }, cancellationToken: cts.Token);
        var watch = Stopwatch.StartNew();
        ChangeEvent? mine = null;
        await foreach (var e in call.ResponseStream.ReadAllAsync(cts.Token))
            if (CustomerId(e) == id) { mine = e; break; }
        output.WriteLine($"delivered in {watch.ElapsedMilliseconds} ms with both transactions open");
        Assert.NotNull(mine);
        Assert.Equal("CustomerRegistered", mine.EventType);
    }

    [Fact]
    public async Task Each_partner_reads_only_the_events_of_customers_linked_to_its_systems()
    {
        string start;
        await using (var db = await suite.CustomerDb.OpenConnectionAsync())
            start = await db.ExecuteScalarAsync<string>("SELECT coalesce(max(tx)::text || '-' || max(id), '') FROM change_events") ?? "";
        var run = Guid.NewGuid().ToString("N")[..8];
        CustomerService.CustomerServiceClient Partner(string system) =>
            new(suite.Customer.ChannelWithToken(TestAuth.Token(Roles.Partner, "feed-" + system, systems: [system])));
        ChangeFeed.ChangeFeedClient Feed(string system) =>
            new(suite.Customer.ChannelWithToken(TestAuth.Token(Roles.Partner, "feed-" + system, systems: [system])));
        async Task<string> Register(string system, string id, string name) => (await Partner(system).UpsertCustomerAsync(new UpsertCustomerRequest
        {
            Ref = new ExternalRef { System = system, Id = $"{id}-{run}" },
            Profile = new CustomerProfile { Name = name, Phone = CustomerProfileTests.UniquePhone() },
        })).Customer.Id;

        // In commit order: erp's customer and its order, tmall's customer and its order, a customer of nobody's
        // (made by staff), then one more customer each as markers: once a feed has its marker, anything it was going
        // to get from before would have come first.
        var erpCustomer = await Register("erp", "SCOPE-FEED-E", "于谦");
        var erpOrder = (await Partner("erp").RecordOrderAsync(FeedOrder("ERP-SO-" + run, erpCustomer))).Id;
        var tmallCustomer = await Register("tmall", "SCOPE-FEED-T", "林冲");
        var tmallOrder = (await Partner("tmall").RecordOrderAsync(FeedOrder("TM-SO-" + run, tmallCustomer))).Id;
        var staff = new CustomerService.CustomerServiceClient(suite.Customer.ChannelFor(Roles.Admin, "feed-admin"));
        var nobodys = (await staff.CreateCustomerAsync(new CreateCustomerRequest
        {
            RequestId = "feed-" + run, Profile = new CustomerProfile { Name = "鲁达", Phone = CustomerProfileTests.UniquePhone() },
        })).Id;
        var erpMarker = await Register("erp", "SCOPE-FEED-EM", "于谦二");
        var tmallMarker = await Register("tmall", "SCOPE-FEED-TM", "林冲二");

        async Task<List<(string Type, string Customer)>> ReadUntil(string system, string marker)
        {
            var got = new List<(string, string)>();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            using var call = Feed(system).WatchChanges(new WatchChangesRequest { FromToken = start }, cancellationToken: cts.Token);
            await foreach (var e in call.ResponseStream.ReadAllAsync(cts.Token))
            {
                var customer = AnyCustomerId(e);
                got.Add((e.EventType, customer));
                if (customer == marker) break;
            }
            return got;
        }
        var erp = await ReadUntil("erp", erpMarker);
        var tmall = await ReadUntil("tmall", tmallMarker);
        output.WriteLine($"erp: {erp.Count} events, tmall: {tmall.Count} events");

        // Each sees its own customers' registrations and orders (order events name the customer at the top level)...
        Assert.Contains(("CustomerRegistered", erpCustomer), erp);
        Assert.Contains(("OrderPaid", erpCustomer), erp);
        Assert.Contains(("CustomerRegistered", tmallCustomer), tmall);
        Assert.Contains(("OrderPaid", tmallCustomer), tmall);
        // ...and nothing else: every event either feed got is about a customer of its own system.
        var erpOwn = new[] { erpCustomer, erpMarker };
        var tmallOwn = new[] { tmallCustomer, tmallMarker };
        Assert.All(erp, e => Assert.Contains(e.Customer, erpOwn));
        Assert.All(tmall, e => Assert.Contains(e.Customer, tmallOwn));
        Assert.NotEqual(erpOrder, tmallOrder);

        // Staff still read everything: the admin feed has all of them.
        var everything = new List<string>();
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
        using (var call = new ChangeFeed.ChangeFeedClient(suite.Customer.ChannelFor(Roles.Admin, "feed-admin"))
                   .WatchChanges(new WatchChangesRequest { FromToken = start }, cancellationToken: cts.Token))
            await foreach (var e in call.ResponseStream.ReadAllAsync(cts.Token))
            {
                everything.Add(AnyCustomerId(e));
                if (AnyCustomerId(e) == tmallMarker) break;
            }
        Assert.Contains(nobodys, everything);
        Assert.Contains(erpCustomer, everything);
        Assert.Contains(tmallCustomer, everything);

        // A service that does not know which customers are a partner's does not open its feed to partners.
        var loyaltyFeed = new ChangeFeed.ChangeFeedClient(suite.Loyalty.ChannelWithToken(TestAuth.Token(Roles.Partner, "feed-erp", systems: ["erp"])));
        using (var refused = loyaltyFeed.WatchChanges(new WatchChangesRequest()))
            Assert.Equal(StatusCode.FailedPrecondition, (await Assert.ThrowsAsync<RpcException>(() => refused.ResponseStream.MoveNext())).StatusCode);
    }

    private static RecordOrderRequest FeedOrder(string externalOrderId, string customerId) => new()
    {
        ExternalOrderId = externalOrderId, CustomerId = customerId, Channel = "online", AmountPaid = new Money { Amount = "188.00" },
        PaidAt = Timestamp.FromDateTime(DateTime.UtcNow.AddMinutes(-1)),
        Lines = { new OrderLine { Sku = "RING-AU-07", Quantity = 1, UnitPrice = new Money { Amount = "188.00" } } },
    };

    /// <summary>The customer an event is about: customerId at the top (orders) or under customer (registrations, updates).</summary>
    private static string AnyCustomerId(ChangeEvent e)
    {
        var root = JsonDocument.Parse(e.Json).RootElement;
        return root.TryGetProperty("customerId", out var id) ? id.GetString()! : root.GetProperty("customer").GetProperty("customerId").GetString()!;
    }

    private static string CustomerId(ChangeEvent e) =>
        JsonDocument.Parse(e.Json).RootElement.GetProperty("customer").GetProperty("customerId").GetString()!;
}
