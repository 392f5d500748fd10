using Crm.Common.V1;
using Crm.Customer.V1;
using Crm.IntegrationTests.Loyalty;
using Crm.IntegrationTests.Support;
using Crm.ServiceDefaults.Security;
using Dapper;
using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;
using Xunit.Abstractions;

namespace Crm.IntegrationTests.Customer;

/// <summary>Bulk import over a bidirectional stream: one status per item, in order; bad items never fail their neighbours.</summary>
[Collection(SuiteCollection.Name)]
public sealed class ImportTests(SuiteFixture suite, ITestOutputHelper output)
{
    private const int Customers = 40;
    private const int Orders = 10_000;

    [Fact]
    public async Task Ten_thousand_orders_with_a_hundred_bad_ones_record_the_rest_once_earn_points_once_and_a_second_import_changes_nothing()
    {
        var import = new CustomerImport.CustomerImportClient(suite.Customer.ChannelFor(Roles.Partner, "erp-import"));
        var run = Guid.NewGuid().ToString("N")[..8];

        // The customers, by the partner's own ids, through the customer import.
        var customerItems = Enumerable.Range(0, Customers).Select(c => new ImportCustomerItem
        {
            BatchId = "customers-" + run, Line = c + 1,
            Customer = new UpsertCustomerRequest
            {
                Ref = new ExternalRef { System = "erp", Id = $"IMP-{run}-{c}" },
                Profile = new CustomerProfile { Name = $"导入客户{c}", Phone = CustomerProfileTests.UniquePhone(), SourceChannel = "erp" },
            },
        }).ToList();
        var customerStatuses = await StreamAsync(import.ImportCustomers(), customerItems);
        Assert.All(customerStatuses, s => Assert.Equal(ImportOutcome.Created, s.Outcome));
        var customerIds = customerStatuses.Select(s => s.Id).ToList();

        // 10,000 orders; every 100th (line 50, 150, ...) is bad in one of four ways.
        var items = Enumerable.Range(0, Orders).Select(i => OrderItem(run, i)).ToList();
        var expectedPoints = new long[Customers];
        for (var i = 0; i < Orders; i++) if (!IsBad(i)) expectedPoints[i % Customers] += (long)decimal.Floor(Amount(i));

        var outboxBefore = await Markers.PositionAsync(suite.CustomerDb);
        var started = DateTime.UtcNow;
        var statuses = await StreamAsync(import.ImportOrders(), items);
        output.WriteLine($"first import of {Orders} orders: {(DateTime.UtcNow - started).TotalSeconds:0.0} s");

        Assert.Equal(items.Select(i => i.Line), statuses.Select(s => s.Line)); // one status per item, in order
        var rejected = statuses.Where(s => s.Outcome == ImportOutcome.Rejected).ToList();
        Assert.Equal(Enumerable.Range(0, Orders).Where(IsBad).Select(i => (long)i + 1), rejected.Select(s => s.Line));
        Assert.All(statuses.Where(s => s.Outcome != ImportOutcome.Rejected), s => Assert.Equal(ImportOutcome.Created, s.Outcome));
        // Each rejection says why, as the single call would: the field for bad input, the resource for an unknown customer.
        foreach (var s in rejected)
        {
            var kind = (int)(s.Line - 1) / 100 % 4;
            Assert.Equal(kind == 3 ? (int)Code.NotFound : (int)Code.InvalidArgument, s.Error.Code);
            if (kind == 3) continue;
            var fields = s.Error.Details.Single(d => d.Is(BadRequest.Descriptor)).Unpack<BadRequest>().FieldViolations.Select(f => f.Field);
            Assert.Contains(kind switch { 0 => "amount_paid", 1 => "lines", _ => "lines[0].sku" }, fields);
        }

        // Every good order earned its points once: each member's balance is the sum of its good orders, one ledger entry each.
        // The import outruns loyalty's consumer (on a busy machine by minutes): wait for as long as it keeps earning.
        var loyalty = new Crm.Loyalty.V1.LoyaltyService.LoyaltyServiceClient(suite.Loyalty.Channel);
        await using (var db = await suite.LoyaltyDb.OpenConnectionAsync())
        {
            var ids = customerIds.Select(Guid.Parse).ToArray();
            Task<long> EarnedAsync() => db.ExecuteScalarAsync<long>("SELECT count(*) FROM ledger_entries WHERE customer_id = ANY(@ids) AND kind = 1" /* earn */, new { ids });
            var (entries, lastProgress) = (await EarnedAsync(), DateTime.UtcNow);
            while (entries < Orders - Orders / 100 && DateTime.UtcNow - lastProgress < TimeSpan.FromSeconds(60))
            {
                await Task.Delay(500);
                var now = await EarnedAsync();
                if (now > entries) (entries, lastProgress) = (now, DateTime.UtcNow);
            }
            output.WriteLine($"loyalty earned {entries} entries in {(DateTime.UtcNow - started).TotalSeconds:0} s from the start of the import");
            Assert.Equal(Orders - Orders / 100, entries);
        }
        for (var c = 0; c < Customers; c++) Assert.Equal(expectedPoints[c], await BalanceAsync(loyalty, customerIds[c]));

        // The same import again: every good item UNCHANGED, the same 100 rejected, and not one event written.
        var outboxAfterFirst = await Markers.PositionAsync(suite.CustomerDb);
        Assert.True(outboxAfterFirst > outboxBefore);
        started = DateTime.UtcNow;
        var again = await StreamAsync(import.ImportOrders(), items);
        output.WriteLine($"second import: {(DateTime.UtcNow - started).TotalSeconds:0.0} s");
        Assert.Equal(statuses.Select(s => (s.Line, s.Outcome == ImportOutcome.Rejected ? ImportOutcome.Rejected : ImportOutcome.Unchanged, s.Id)),
            again.Select(s => (s.Line, s.Outcome, s.Id)));
        Assert.Equal(outboxAfterFirst, await Markers.PositionAsync(suite.CustomerDb));
    }

    [Fact]
    public async Task Only_partners_and_admins_may_import()
    {
        var store = new CustomerImport.CustomerImportClient(suite.Customer.ChannelFor(Roles.Store, "till-7"));
        using var call = store.ImportOrders();
        var ex = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            await call.RequestStream.WriteAsync(new ImportOrderItem { Line = 1 });
            await call.RequestStream.CompleteAsync();
            await call.ResponseStream.MoveNext();
        });
        Assert.Equal(StatusCode.PermissionDenied, ex.StatusCode);
    }

    private static bool IsBad(int i) => i % 100 == 49;

    private static decimal Amount(int i) => 100.25m * (i % 7 + 1);

    private static ImportOrderItem OrderItem(string run, int i)
    {
        var order = new RecordOrderRequest
        {
            CustomerRef = new ExternalRef { System = "erp", Id = $"IMP-{run}-{i % Customers}" },
            ExternalOrderId = $"IMP-{run}-SO-{i}", Channel = "tmall",
            AmountPaid = new Money { Amount = Amount(i).ToString("0.00", System.Globalization.CultureInfo.InvariantCulture) },
            PaidAt = Timestamp.FromDateTime(DateTime.UtcNow.AddDays(-1).AddSeconds(i)),
        };
        order.Lines.Add(new OrderLine { Sku = "BANGLE-" + (i % 13), Quantity = 1, UnitPrice = order.AmountPaid });
        if (IsBad(i))
        {
            switch (i / 100 % 4)
            {
                case 0: order.AmountPaid = new Money { Amount = "-5.00" }; break;
                case 1: order.Lines.Clear(); break;
                case 2: order.Lines[0].Sku = new string('X', 65); break; // over its declared 64
                default: order.CustomerRef.Id = "nobody-" + i; break;
            }
        }
        return new ImportOrderItem { BatchId = "orders-" + run, Line = i + 1, Order = order };
    }

    /// <summary>Sends every item while reading the statuses as they come (the service answers one before reading the next).</summary>
    internal static async Task<List<ImportItemStatus>> StreamAsync<T>(AsyncDuplexStreamingCall<T, ImportItemStatus> call, IReadOnlyList<T> items)
    {
        using (call)
        {
            var sending = Task.Run(async () =>
            {
                foreach (var item in items) await call.RequestStream.WriteAsync(item);
                await call.RequestStream.CompleteAsync();
            });
            var statuses = new List<ImportItemStatus>(items.Count);
            await foreach (var status in call.ResponseStream.ReadAllAsync()) statuses.Add(status);
            await sending;
            return statuses;
        }
    }

    private static async Task<long> BalanceAsync(Crm.Loyalty.V1.LoyaltyService.LoyaltyServiceClient loyalty, string customerId)
    {
        try { return (await loyalty.GetAccountAsync(new Crm.Loyalty.V1.GetAccountRequest { CustomerId = customerId })).Balance; }
        catch (RpcException e) when (e.StatusCode == StatusCode.NotFound) { return -1; }
    }
}
