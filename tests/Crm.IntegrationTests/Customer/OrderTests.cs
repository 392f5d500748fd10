using Crm.Common.V1;
using Crm.Customer.V1;
using Crm.IntegrationTests.Loyalty;
using Crm.IntegrationTests.Support;
using Dapper;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;

namespace Crm.IntegrationTests.Customer;

[Collection(SuiteCollection.Name)]
public class OrderTests(SuiteFixture suite)
{
    private readonly CustomerService.CustomerServiceClient _client = new(suite.Customer.Channel);

    private async Task<string> NewCustomerAsync() =>
        (await _client.CreateCustomerAsync(new CreateCustomerRequest
        {
            Profile = new CustomerProfile { Name = "赵雷", Phone = CustomerProfileTests.UniquePhone() },
        })).Id;

    private static RecordOrderRequest Order(string customerId, string amount = "10000.50", string? externalId = null)
    {
        var request = new RecordOrderRequest
        {
            CustomerId = customerId, ExternalOrderId = externalId ?? "ERP-" + Guid.NewGuid().ToString("N"), StoreId = "SZ-01",
            Channel = "store", PaymentMethod = "wechat_pay", AmountPaid = new Money { Amount = amount },
            PaidAt = Timestamp.FromDateTime(DateTime.UtcNow.AddMinutes(-5)),
        };
        request.Lines.Add(new OrderLine { Sku = "NECKLACE-PT-02", ProductName = "铂金项链", Quantity = 1, UnitPrice = new Money { Amount = amount } });
        return request;
    }

    [Fact]
    public async Task Recording_one_external_order_twice_stores_one_order_and_publishes_one_OrderPaid()
    {
        await using var probe = await EventProbe.StartAsync(suite.Infrastructure.RabbitMq!.AmqpUri, "Crm.Contracts:OrderPaid");
        var customerId = await NewCustomerAsync();
        var outbox = await Markers.PositionAsync(suite.CustomerDb);
        var request = Order(customerId);

        var first = await _client.RecordOrderAsync(request);
        var retry = await _client.RecordOrderAsync(request);

        Assert.Equal(first, retry);
        Assert.Equal("10000.50", first.AmountPaid.Amount);
        Assert.Equal(OrderStatus.Paid, first.Status);
        var changed = request.Clone();
        changed.AmountPaid = new Money { Amount = "1.00" };
        var conflict = await Rpc.FailsWith(StatusCode.AlreadyExists, () => _client.RecordOrderAsync(changed).ResponseAsync);
        Assert.Equal(first.Id, conflict.Resource()!.ResourceName);

        // Marker: once all the outbox rows written so far are confirmed, the customer's next order publishes an OrderPaid
        // on the same path; a duplicate of the first would be on the probe's queue before it (see Markers).
        await Markers.DrainAsync(suite.CustomerDb, outbox);
        var marker = await _client.RecordOrderAsync(Order(customerId, "1.00"));
        await probe.WaitUntilAsync(() => probe.For("orderId", marker.Id).Count >= 1, TimeSpan.FromSeconds(15), "the marker OrderPaid");
        var events = probe.For("customerId", customerId);
        Assert.Equal([first.Id, marker.Id], events.Select(e => e.Message.GetProperty("orderId").GetString()));
        Assert.Equal(10000.50m, EventProbe.Decimal(events[0].Message, "amountPaid"));

        await using var db = await suite.CustomerDb.OpenConnectionAsync();
        Assert.Equal(1, await db.ExecuteScalarAsync<int>("SELECT count(*) FROM orders WHERE external_order_id = @id", new { id = request.ExternalOrderId }));
    }

    [Fact]
    public async Task Orders_recorded_while_RabbitMQ_is_down_are_all_published_once_when_it_returns()
    {
        var rabbit = suite.Infrastructure.RabbitMq!;
        await using var probe = await EventProbe.StartAsync(rabbit.AmqpUri, "Crm.Contracts:OrderPaid");
        var customerId = await NewCustomerAsync();
        var outbox = await Markers.PositionAsync(suite.CustomerDb);

        await rabbit.StopAsync();
        try
        {
            for (var i = 0; i < 100; i++)
                await _client.RecordOrderAsync(Order(customerId, $"{100 + i}.00"));
            await using var db = await suite.CustomerDb.OpenConnectionAsync();
            Assert.True(await db.ExecuteScalarAsync<int>("SELECT count(*) FROM outbox_messages WHERE seq > @outbox AND dead_at IS NULL", new { outbox }) >= 100);
        }
        finally
        {
            await rabbit.StartAsync();
        }

        await probe.WaitUntilAsync(() => probe.For("customerId", customerId).Count >= 100, TimeSpan.FromSeconds(90), "100 OrderPaid after the outage");
        await Markers.DrainAsync(suite.CustomerDb, outbox, TimeSpan.FromSeconds(90));
        var marker = await _client.RecordOrderAsync(Order(customerId, "1.00"));
        await probe.WaitUntilAsync(() => probe.For("orderId", marker.Id).Count >= 1, TimeSpan.FromSeconds(15), "the marker OrderPaid");
        var events = probe.For("customerId", customerId).Where(e => e.Message.GetProperty("orderId").GetString() != marker.Id).ToList();
        Assert.Equal(100, events.Count);
        Assert.Equal(100, events.Select(e => e.MessageId).Distinct().Count());
        Assert.Equal(Enumerable.Range(100, 100).Select(i => (decimal)i), events.Select(e => EventProbe.Decimal(e.Message, "amountPaid")).Order());
    }

    [Fact]
    public async Task Refunds_are_idempotent_and_never_exceed_what_was_paid()
    {
        await using var probe = await EventProbe.StartAsync(suite.Infrastructure.RabbitMq!.AmqpUri, "Crm.Contracts:OrderRefunded");
        var customerId = await NewCustomerAsync();
        var outbox = await Markers.PositionAsync(suite.CustomerDb);
        var order = await _client.RecordOrderAsync(Order(customerId, "1000.00"));
        var other = await _client.RecordOrderAsync(Order(customerId, "5.00")); // refunded last, as the marker

        var partial = new RefundOrderRequest { RefundId = "RF-" + Guid.NewGuid(), OrderId = order.Id, Amount = new Money { Amount = "300.00" }, Reason = "尺寸不合适" };
        var first = await _client.RefundOrderAsync(partial);
        var retried = await _client.RefundOrderAsync(partial);
        Assert.Equal(first, retried);
        Assert.Equal(("300.00", OrderStatus.PartiallyRefunded), (first.OrderAmountRefunded.Amount, first.OrderStatus));

        var tooMuch = new RefundOrderRequest { RefundId = "RF-" + Guid.NewGuid(), OrderId = order.Id, Amount = new Money { Amount = "700.01" } };
        var ex = await Rpc.FailsWith(StatusCode.FailedPrecondition, () => _client.RefundOrderAsync(tooMuch).ResponseAsync);
        Assert.Contains("700.00 still refundable", ex.Status.Detail);

        await using (var db = await suite.CustomerDb.OpenConnectionAsync())
        {
            Assert.Equal(300.00m, await db.ExecuteScalarAsync<decimal>("SELECT amount_refunded FROM orders WHERE id = @id", new { id = Guid.Parse(order.Id) }));
            Assert.Equal(0, await db.ExecuteScalarAsync<int>("SELECT count(*) FROM refunds WHERE refund_id = @id", new { id = tooMuch.RefundId }));
        }

        // No amount: refund the rest.
        var rest = await _client.RefundOrderAsync(new RefundOrderRequest { RefundId = "RF-" + Guid.NewGuid(), OrderId = order.Id });
        Assert.Equal(("700.00", "1000.00", OrderStatus.Refunded), (rest.Amount.Amount, rest.OrderAmountRefunded.Amount, rest.OrderStatus));
        await Rpc.FailsWith(StatusCode.FailedPrecondition, () =>
            _client.RefundOrderAsync(new RefundOrderRequest { RefundId = "RF-" + Guid.NewGuid(), OrderId = order.Id }).ResponseAsync);

        await probe.WaitUntilAsync(() => probe.For("orderId", order.Id).Count >= 2, TimeSpan.FromSeconds(15), "two OrderRefunded");
        await Markers.DrainAsync(suite.CustomerDb, outbox);
        await _client.RefundOrderAsync(new RefundOrderRequest { RefundId = "RF-" + Guid.NewGuid(), OrderId = other.Id });
        await probe.WaitUntilAsync(() => probe.For("orderId", other.Id).Count >= 1, TimeSpan.FromSeconds(15), "the marker OrderRefunded");
        Assert.Equal([300.00m, 1000.00m], probe.For("orderId", order.Id).Select(e => EventProbe.Decimal(e.Message, "totalRefunded")).Order());
    }

    [Fact]
    public async Task Concurrent_refunds_cannot_add_up_to_more_than_was_paid()
    {
        var order = await _client.RecordOrderAsync(Order(await NewCustomerAsync(), "1000.00"));
        var attempts = Enumerable.Range(0, 10).Select(async _ =>
        {
            try
            {
                await _client.RefundOrderAsync(new RefundOrderRequest { RefundId = "RF-" + Guid.NewGuid(), OrderId = order.Id, Amount = new Money { Amount = "300.00" } });
                return true;
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.FailedPrecondition) { return false; }
        });
        var results = await Task.WhenAll(attempts);
        Assert.Equal(3, results.Count(ok => ok));
        var after = await _client.GetOrderAsync(new GetOrderRequest { Id = order.Id });
        Assert.Equal("900.00", after.AmountRefunded.Amount);
    }

    [Fact]
    public async Task An_order_is_audited_once_and_its_retry_conflict_or_unknown_customer_leaves_no_audit_row()
    {
        // The audit row is written in one batch with the order insert; every path that inserts no order rolls it back.
        var customerId = await NewCustomerAsync();
        var request = Order(customerId, "880.00");
        var first = await _client.RecordOrderAsync(request);
        Assert.Equal(first, await _client.RecordOrderAsync(request));
        var changed = request.Clone();
        changed.AmountPaid = new Money { Amount = "1.00" };
        await Rpc.FailsWith(StatusCode.AlreadyExists, () => _client.RecordOrderAsync(changed).ResponseAsync);
        var orphan = Order(Guid.NewGuid().ToString(), "880.00");
        await Rpc.FailsWith(StatusCode.NotFound, () => _client.RecordOrderAsync(orphan).ResponseAsync);

        await using var db = await suite.CustomerDb.OpenConnectionAsync();
        var rows = (await db.QueryAsync<(string Rpc, string TargetId, string Outcome)>(
            "SELECT rpc, target_id, outcome FROM audit_events WHERE idempotency_key = ANY(@keys)",
            new { keys = new[] { request.ExternalOrderId, orphan.ExternalOrderId } })).ToList();
        Assert.Equal([("/crm.customer.v1.CustomerService/RecordOrder", first.Id, "OK")], rows);

        // The OrderPaid (outbox row and change feed copy, written together) is in the same batch: one for the order, none
        // for the retry, the conflicting repeat or the order of an unknown customer. The relay deletes published outbox
        // rows, so the change feed is where it stays.
        var keys = new[] { request.ExternalOrderId, orphan.ExternalOrderId };
        Assert.Equal([first.Id], await db.QueryAsync<string>(
            "SELECT payload->>'orderId' FROM change_events WHERE event_type = 'OrderPaid' AND payload->>'externalOrderId' = ANY(@keys)",
            new { keys }));
    }

    [Fact]
    public async Task Bad_orders_get_field_violations_and_write_nothing()
    {
        var customerId = await NewCustomerAsync();
        var before = await CountAsync();

        var zero = await Rpc.FailsWith(StatusCode.InvalidArgument, () => _client.RecordOrderAsync(Order(customerId, "0")).ResponseAsync);
        Assert.Contains("amount_paid", zero.Fields());

        var negative = Order(customerId, "-10.00");
        var negativeEx = await Rpc.FailsWith(StatusCode.InvalidArgument, () => _client.RecordOrderAsync(negative).ResponseAsync);
        Assert.Equal(["amount_paid", "lines[0].unit_price"], negativeEx.Fields());

        var empty = Order(customerId);
        empty.Lines.Clear();
        Assert.Equal(["lines"], (await Rpc.FailsWith(StatusCode.InvalidArgument, () => _client.RecordOrderAsync(empty).ResponseAsync)).Fields());

        var unknownCustomer = Guid.NewGuid().ToString();
        var notFound = await Rpc.FailsWith(StatusCode.NotFound, () => _client.RecordOrderAsync(Order(unknownCustomer)).ResponseAsync);
        Assert.Equal(("customer", unknownCustomer), (notFound.Resource()!.ResourceType, notFound.Resource()!.ResourceName));

        var unknownOrder = Guid.NewGuid().ToString();
        await Rpc.FailsWith(StatusCode.NotFound, () =>
            _client.RefundOrderAsync(new RefundOrderRequest { RefundId = "RF-x", OrderId = unknownOrder }).ResponseAsync);

        Assert.Equal(before, await CountAsync());
    }

    [Fact]
    public async Task Lists_a_customers_orders_newest_first_in_pages()
    {
        var customerId = await NewCustomerAsync();
        for (var i = 0; i < 5; i++)
        {
            var order = Order(customerId, $"{i + 1}.00");
            order.PaidAt = Timestamp.FromDateTime(new DateTime(2026, 1, 1 + i, 10, 0, 0, DateTimeKind.Utc));
            await _client.RecordOrderAsync(order);
        }
        var amounts = new List<string>();
        var request = new ListOrdersRequest { CustomerId = customerId, PageSize = 2 };
        do
        {
            var page = await _client.ListOrdersAsync(request);
            amounts.AddRange(page.Orders.Select(o => o.AmountPaid.Amount));
            request.PageToken = page.NextPageToken;
        } while (request.PageToken != "");
        Assert.Equal(["5.00", "4.00", "3.00", "2.00", "1.00"], amounts);
    }

    private async Task<(long Orders, long Refunds, long Outbox)> CountAsync()
    {
        await using var db = await suite.CustomerDb.OpenConnectionAsync();
        return (await db.ExecuteScalarAsync<long>("SELECT count(*) FROM orders"),
                await db.ExecuteScalarAsync<long>("SELECT count(*) FROM refunds"),
                await db.ExecuteScalarAsync<long>("SELECT count(*) FROM change_events"));
    }
}
