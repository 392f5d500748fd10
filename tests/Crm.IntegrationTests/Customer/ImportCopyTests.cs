using System.Globalization;
using Crm.Common.V1;
using Crm.Customer.V1;
using Crm.IntegrationTests.Support;
using Crm.ServiceDefaults.Security;
using Dapper;
using Google.Protobuf.WellKnownTypes;
using Google.Rpc;

namespace Crm.IntegrationTests.Customer;

/// <summary>
/// The order import writes a batch of new orders, their OrderPaid events, change-feed copies and audit rows with COPY, and
/// falls back to INSERT ... ON CONFLICT when a batch meets a known external id or a missing customer. Both must leave
/// exactly the rows RecordOrder's path leaves.
/// </summary>
[Collection(SuiteCollection.Name)]
public sealed class ImportCopyTests(SuiteFixture suite)
{
    [Fact]
    public async Task Copied_orders_have_one_published_event_its_identical_change_event_in_the_same_transaction_and_order_and_one_audit_row()
    {
        await using var probe = await EventProbe.StartAsync(suite.Infrastructure.RabbitMq!.AmqpUri, "Crm.Contracts:OrderPaid");
        var run = Guid.NewGuid().ToString("N")[..8];
        var import = new CustomerImport.CustomerImportClient(suite.Customer.ChannelFor(Roles.Admin));
        var customers = await CustomersAsync(import, run, 3);
        var items = Enumerable.Range(0, 300).Select(i => Item(run, i + 1, $"CPY-{run}-{i:D4}", customers[i % 3], "120.50")).ToList();

        var statuses = await ImportTests.StreamAsync(import.ImportOrders(), items);
        Assert.All(statuses, s => Assert.Equal(ImportOutcome.Created, s.Outcome));

        await using var db = await suite.CustomerDb.OpenConnectionAsync();
        var pattern = $"CPY-{run}-%";
        var rows = (await db.QueryAsync<(Guid OrderId, Guid CustomerId, long OrderTx, Guid MessageId, string EventType, Guid? FeedCustomer, long FeedTx)>("""
            SELECT o.id, o.customer_id, o.xmin::text::bigint, c.message_id, c.event_type, c.customer_id, (c.tx::text::bigint % 4294967296)
            FROM orders o
            JOIN change_events c ON c.payload->>'orderId' = o.id::text
            WHERE o.external_order_id LIKE @pattern
            ORDER BY c.tx, c.id
            """, new { pattern })).ToList();
        Assert.Equal(300, rows.Count); // one change event per order, no more
        Assert.Equal(statuses.Select(s => Guid.Parse(s.Id)).Order(), rows.Select(r => r.OrderId).Order());
        Assert.All(rows, r => Assert.Equal(("OrderPaid", r.CustomerId, r.OrderTx), (r.EventType, r.FeedCustomer!.Value, r.FeedTx)));
        // Batches may commit in any order; within one (one transaction) the feed's events follow the items.
        var lineOf = statuses.ToDictionary(s => Guid.Parse(s.Id), s => s.Line);
        foreach (var batch in rows.GroupBy(r => r.OrderTx))
            Assert.Equal(batch.Select(r => lineOf[r.OrderId]).Order(), batch.Select(r => lineOf[r.OrderId]));

        // The outbox rows were published once each, with the change feed's message id and event (the broker's copy went
        // through MassTransit's serializer, which writes dates and nulls its own way: compare the values), and left the outbox.
        var messageIds = rows.Select(r => r.MessageId).ToHashSet();
        await probe.WaitUntilAsync(() => messageIds.IsSubsetOf(probe.Received.Select(e => e.MessageId)), TimeSpan.FromSeconds(30), "the 300 OrderPaid");
        var published = probe.Received.Where(e => messageIds.Contains(e.MessageId)).ToList();
        Assert.Equal(300, published.Count);
        Assert.Equal(300, await db.ExecuteScalarAsync<int>("""
            SELECT count(*) FROM change_events c JOIN unnest(@ids, @jsons) AS p(id, json) ON p.id = c.message_id
            CROSS JOIN LATERAL (SELECT p.json::jsonb AS j) AS sent
            WHERE (c.payload->>'orderId', c.payload->>'customerId', c.payload->>'externalOrderId', (c.payload->>'amountPaid')::numeric,
                   c.payload->'lines'->0->>'sku', (c.payload->>'paidAt')::timestamptz)
                = (sent.j->>'orderId', sent.j->>'customerId', sent.j->>'externalOrderId', (sent.j->>'amountPaid')::numeric,
                   sent.j->'lines'->0->>'sku', (sent.j->>'paidAt')::timestamptz)
            """, new { ids = published.Select(e => e.MessageId).ToArray(), jsons = published.Select(e => e.Message.GetRawText()).ToArray() }));
        await Messaging.Scenario.WaitUntilAsync(async () => await db.ExecuteScalarAsync<int>(
            "SELECT count(*) FROM outbox_messages WHERE id = ANY(@ids)", new { ids = messageIds.ToArray() }) == 0, TimeSpan.FromSeconds(10),
            "the published rows to leave the outbox");
        Assert.Equal(300, await db.ExecuteScalarAsync<int>(
            "SELECT count(*) FROM change_events c WHERE c.payload->>'externalOrderId' LIKE @pattern AND c.customer_id = change_event_customer(c.payload)",
            new { pattern }));

        var audit = (await db.QueryAsync<(string TargetId, string Key, string Role, string Rpc, string Outcome)>(
            "SELECT target_id, idempotency_key, role, rpc, outcome FROM audit_events WHERE idempotency_key LIKE @pattern ORDER BY idempotency_key",
            new { pattern })).ToList();
        Assert.Equal(items.Select(i => i.Order.ExternalOrderId), audit.Select(a => a.Key));
        Assert.Equal(statuses.Select(s => s.Id), audit.Select(a => a.TargetId));
        Assert.All(audit, a => Assert.Equal((Roles.Admin, "/crm.customer.v1.CustomerImport/ImportOrders", "OK"), (a.Role, a.Rpc, a.Outcome)));
    }

    [Fact]
    public async Task A_batch_with_a_known_external_id_and_an_unknown_customer_records_every_other_order()
    {
        var run = Guid.NewGuid().ToString("N")[..8];
        var import = new CustomerImport.CustomerImportClient(suite.Customer.ChannelFor(Roles.Admin));
        var customers = await CustomersAsync(import, run, 2);
        var known = await ImportTests.StreamAsync(import.ImportOrders(), [Item(run, 1, $"MIX-{run}-0100", customers[0], "88.00")]);
        Assert.Equal(ImportOutcome.Created, known.Single().Outcome);

        // 200 orders: the 101st repeats the order above exactly, the 151st names a customer that does not exist.
        var missing = Guid.NewGuid().ToString();
        var items = Enumerable.Range(0, 200)
            .Select(i => Item(run, i + 1, $"MIX-{run}-{i:D4}", i == 150 ? missing : customers[i % 2], i == 100 ? "88.00" : "60.00"))
            .ToList();
        items[100] = Item(run, 101, $"MIX-{run}-0100", customers[0], "88.00");
        var statuses = await ImportTests.StreamAsync(import.ImportOrders(), items);

        Assert.Equal(items.Select(i => i.Line), statuses.Select(s => s.Line));
        Assert.Equal((ImportOutcome.Unchanged, known.Single().Id), (statuses[100].Outcome, statuses[100].Id));
        Assert.Equal((ImportOutcome.Rejected, (int)Code.NotFound), (statuses[150].Outcome, statuses[150].Error.Code));
        Assert.Equal(198, statuses.Count(s => s.Outcome == ImportOutcome.Created));

        await using var db = await suite.CustomerDb.OpenConnectionAsync();
        var pattern = $"MIX-{run}-%";
        Assert.Equal(199, await db.ExecuteScalarAsync<int>("SELECT count(*) FROM orders WHERE external_order_id LIKE @pattern", new { pattern }));
        Assert.Equal(199, await db.ExecuteScalarAsync<int>(
            "SELECT count(*) FROM change_events WHERE event_type = 'OrderPaid' AND payload->>'externalOrderId' LIKE @pattern", new { pattern }));
        Assert.Equal(199, await db.ExecuteScalarAsync<int>(
            "SELECT count(*) FROM change_events WHERE payload->>'externalOrderId' LIKE @pattern AND customer_id = change_event_customer(payload)",
            new { pattern }));
        Assert.Equal(199, await db.ExecuteScalarAsync<int>("SELECT count(*) FROM audit_events WHERE idempotency_key LIKE @pattern", new { pattern }));
    }

    private static async Task<List<string>> CustomersAsync(CustomerImport.CustomerImportClient import, string run, int count)
    {
        var statuses = await ImportTests.StreamAsync(import.ImportCustomers(), Enumerable.Range(0, count).Select(c => new ImportCustomerItem
        {
            BatchId = "customers-" + run, Line = c + 1,
            Customer = new UpsertCustomerRequest
            {
                Ref = new ExternalRef { System = "erp", Id = $"COPY-{run}-{c}" },
                Profile = new CustomerProfile { Name = $"复制客户{c}", Phone = CustomerProfileTests.UniquePhone(), SourceChannel = "erp" },
            },
        }).ToList());
        Assert.All(statuses, s => Assert.Equal(ImportOutcome.Created, s.Outcome));
        return statuses.Select(s => s.Id).ToList();
    }

    private static ImportOrderItem Item(string run, long line, string externalId, string customerId, string amount)
    {
        var order = new RecordOrderRequest
        {
            CustomerId = customerId, ExternalOrderId = externalId, Channel = "erp", StoreId = line % 2 == 0 ? "SZ-001" : "",
            AmountPaid = new Money { Amount = amount },
            PaidAt = Timestamp.FromDateTime(DateTime.UtcNow.AddHours(-3).AddSeconds(line)),
        };
        order.Lines.Add(new OrderLine { Sku = "RING-" + line.ToString(CultureInfo.InvariantCulture), Quantity = 1, UnitPrice = order.AmountPaid });
        return new ImportOrderItem { BatchId = "copy-" + run, Line = line, Order = order };
    }
}
