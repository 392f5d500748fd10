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
/// The order import writes batches in one transaction: an external id repeated inside a stream, and the same orders
/// sent by two streams at once, must come out exactly as one RecordOrder call per item would leave them.
/// </summary>
[Collection(SuiteCollection.Name)]
public sealed class ImportBatchTests(SuiteFixture suite)
{
    [Fact]
    public async Task A_repeated_external_id_in_one_stream_is_recorded_once_an_exact_repeat_is_unchanged_and_other_content_is_already_exists()
    {
        var run = Guid.NewGuid().ToString("N")[..8];
        var import = new CustomerImport.CustomerImportClient(suite.Customer.ChannelFor(Roles.Partner, "erp-import"));
        var customers = await CustomersAsync(import, run, 2);

        // 1,200 orders; at lines 1001-1004 (inside a full batch when the sender is ahead) the same external id four
        // times: the order, an exact repeat, the same id with another amount, the same id for another customer.
        var items = Enumerable.Range(0, 1200).Select(i => Item(run, i + 1, $"DUP-{run}-{i}", customers[0], "88.00")).ToList();
        var dup = $"DUP-{run}-X";
        items[1000] = Item(run, 1001, dup, customers[0], "520.00");
        items[1001] = Item(run, 1002, dup, customers[0], "520.00");
        items[1002] = Item(run, 1003, dup, customers[0], "521.00");
        items[1003] = Item(run, 1004, dup, customers[1], "520.00");
        var statuses = await ImportTests.StreamAsync(import.ImportOrders(), items);

        // Items of one stream may be applied in any order within the service's window (import.proto), so which of
        // the four wins is not fixed when they straddle two batches; exactly one does, and the rest follow from it.
        Assert.Equal(items.Select(i => i.Line), statuses.Select(s => s.Line));
        var four = statuses.Skip(1000).Take(4).ToList();
        var winner = four.FindIndex(s => s.Outcome == ImportOutcome.Created);
        Assert.Single(four, s => s.Outcome == ImportOutcome.Created);
        var won = items[1000 + winner].Order;
        for (var k = 0; k < 4; k++)
        {
            if (k == winner) continue;
            var order = items[1000 + k].Order;
            if (order.CustomerId == won.CustomerId && order.AmountPaid.Amount == won.AmountPaid.Amount)
                Assert.Equal((ImportOutcome.Unchanged, four[winner].Id), (four[k].Outcome, four[k].Id));
            else
            {
                Assert.Equal(ImportOutcome.Rejected, four[k].Outcome);
                Assert.Equal((int)Code.AlreadyExists, four[k].Error.Code);
                Assert.Contains(four[winner].Id, four[k].Error.Message);
            }
        }
        Assert.Equal(1196 + 1, statuses.Count(s => s.Outcome == ImportOutcome.Created)); // the others, and the winner

        await using var db = await suite.CustomerDb.OpenConnectionAsync();
        var rows = await db.QueryAsync<(Guid Id, decimal AmountPaid)>("SELECT id, amount_paid FROM orders WHERE external_order_id = @dup", new { dup });
        Assert.Equal([(Guid.Parse(four[winner].Id), decimal.Parse(won.AmountPaid.Amount, CultureInfo.InvariantCulture))], rows);
        Assert.Equal(1, await db.ExecuteScalarAsync<int>("SELECT count(*) FROM change_events WHERE event_type = 'OrderPaid' AND payload->>'externalOrderId' = @dup", new { dup }));
        Assert.Equal(1, await db.ExecuteScalarAsync<int>("SELECT count(*) FROM audit_events WHERE idempotency_key = @dup", new { dup }));
    }

    [Fact]
    public async Task The_same_orders_in_two_concurrent_streams_are_recorded_once_each_one_stream_creating_and_the_other_unchanged()
    {
        var run = Guid.NewGuid().ToString("N")[..8];
        var import = new CustomerImport.CustomerImportClient(suite.Customer.ChannelFor(Roles.Partner, "erp-import"));
        var customers = await CustomersAsync(import, run, 5);
        const int orders = 3000;
        var items = Enumerable.Range(0, orders)
            .Select(i => Item(run, i + 1, $"TWO-{run}-{i}", customers[i % customers.Count], (10 + i % 90).ToString("0.00", CultureInfo.InvariantCulture)))
            .ToList();
        var reversed = Enumerable.Reverse(items).ToList(); // the other stream meets the same ids from the other end

        var both = await Task.WhenAll(ImportTests.StreamAsync(import.ImportOrders(), items), ImportTests.StreamAsync(import.ImportOrders(), reversed));
        var first = both[0].ToDictionary(s => s.Line);
        var second = both[1].ToDictionary(s => s.Line);
        Assert.Equal(orders, first.Count);
        Assert.Equal(orders, second.Count);
        foreach (var line in first.Keys)
        {
            var outcomes = new[] { first[line].Outcome, second[line].Outcome }.Order().ToArray();
            Assert.Equal([ImportOutcome.Created, ImportOutcome.Unchanged], outcomes);
            Assert.Equal(first[line].Id, second[line].Id);
        }

        await using var db = await suite.CustomerDb.OpenConnectionAsync();
        var pattern = $"TWO-{run}-%";
        Assert.Equal(orders, await db.ExecuteScalarAsync<int>("SELECT count(*) FROM orders WHERE external_order_id LIKE @pattern", new { pattern }));
        Assert.Equal(orders, await db.ExecuteScalarAsync<int>(
            "SELECT count(*) FROM change_events WHERE event_type = 'OrderPaid' AND payload->>'externalOrderId' LIKE @pattern", new { pattern }));
        Assert.Equal(orders, await db.ExecuteScalarAsync<int>("SELECT count(DISTINCT message_id) FROM change_events WHERE payload->>'externalOrderId' LIKE @pattern",
            new { pattern }));
    }

    private static async Task<List<string>> CustomersAsync(CustomerImport.CustomerImportClient import, string run, int count)
    {
        var statuses = await ImportTests.StreamAsync(import.ImportCustomers(), Enumerable.Range(0, count).Select(c => new ImportCustomerItem
        {
            BatchId = "customers-" + run, Line = c + 1,
            Customer = new UpsertCustomerRequest
            {
                Ref = new ExternalRef { System = "erp", Id = $"BATCH-{run}-{c}" },
                Profile = new CustomerProfile { Name = $"批量客户{c}", Phone = CustomerProfileTests.UniquePhone(), SourceChannel = "erp" },
            },
        }).ToList());
        Assert.All(statuses, s => Assert.Equal(ImportOutcome.Created, s.Outcome));
        return statuses.Select(s => s.Id).ToList();
    }

    private static ImportOrderItem Item(string run, long line, string externalId, string customerId, string amount)
    {
        var order = new RecordOrderRequest
        {
            CustomerId = customerId, ExternalOrderId = externalId, Channel = "erp",
            AmountPaid = new Money { Amount = amount },
            PaidAt = Timestamp.FromDateTime(DateTime.UtcNow.AddHours(-2)),
        };
        order.Lines.Add(new OrderLine { Sku = "PENDANT-9", Quantity = 1, UnitPrice = order.AmountPaid });
        return new ImportOrderItem { BatchId = "batch-" + run, Line = line, Order = order };
    }
}
