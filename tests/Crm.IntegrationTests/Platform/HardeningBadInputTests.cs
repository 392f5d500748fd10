using System.Diagnostics;
using Crm.Common.V1;
using Crm.IntegrationTests.Customer;
using Crm.IntegrationTests.Support;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using CustomerApi = Crm.Customer.V1;
using LoyaltyApi = Crm.Loyalty.V1;

namespace Crm.IntegrationTests.Platform;

/// <summary>
/// Issue 6, "bad input must never be INTERNAL, and must always get an answer": one test per finding.
/// </summary>
[Collection(SuiteCollection.Name)]
public class HardeningBadInputTests(SuiteFixture suite)
{
    private readonly CustomerApi.CustomerService.CustomerServiceClient _customers = new(suite.Customer.Channel);
    private readonly LoyaltyApi.LoyaltyService.LoyaltyServiceClient _loyalty = new(suite.Loyalty.Channel);

    private static CallOptions Deadline() => new(deadline: DateTime.UtcNow.AddSeconds(5));

    private async Task<string> NewCustomerAsync() =>
        (await _customers.CreateCustomerAsync(new CustomerApi.CreateCustomerRequest
        {
            Profile = new CustomerApi.CustomerProfile { Name = "钱芳", Phone = CustomerProfileTests.UniquePhone() },
        }, Deadline())).Id;

    private static CustomerApi.RecordOrderRequest Order(string customerId, string amount = "300.00")
    {
        var request = new CustomerApi.RecordOrderRequest
        {
            CustomerId = customerId, ExternalOrderId = "ERP-" + Guid.NewGuid().ToString("N"), Channel = "store",
            AmountPaid = new Money { Amount = amount }, PaidAt = Timestamp.FromDateTime(DateTime.UtcNow.AddMinutes(-5)),
        };
        request.Lines.Add(new CustomerApi.OrderLine { Sku = "RING-AU-01", Quantity = 1, UnitPrice = new Money { Amount = amount } });
        return request;
    }

    [Fact]
    public async Task Timestamps_out_of_range_are_INVALID_ARGUMENT_naming_the_field()
    {
        var customerId = await NewCustomerAsync();
        foreach (var bad in new[]
                 {
                     new Timestamp { Seconds = 253402300800 }, new Timestamp { Seconds = -62135596801 },
                     new Timestamp { Seconds = 1_700_000_000, Nanos = -1 }, new Timestamp { Seconds = 1_700_000_000, Nanos = 1_000_000_000 },
                     new Timestamp { Seconds = long.MaxValue }, new Timestamp { Seconds = long.MinValue },
                 })
        {
            var order = Order(customerId);
            order.PaidAt = bad;
            var ex = await Rpc.FailsWith(StatusCode.InvalidArgument, () => _customers.RecordOrderAsync(order, Deadline()).ResponseAsync);
            Assert.Contains("paid_at", ex.Fields());

            var refund = new CustomerApi.RefundOrderRequest { RefundId = "R-" + Guid.NewGuid(), OrderId = Guid.NewGuid().ToString(), RefundedAt = bad };
            ex = await Rpc.FailsWith(StatusCode.InvalidArgument, () => _customers.RefundOrderAsync(refund, Deadline()).ResponseAsync);
            Assert.Contains("refunded_at", ex.Fields());
        }
    }

    [Fact]
    public async Task Dates_out_of_range_are_INVALID_ARGUMENT_naming_the_field()
    {
        foreach (var bad in new[]
                 {
                     new Google.Type.Date { Year = 10000, Month = 1, Day = 1 }, new Google.Type.Date { Year = 1990, Month = 13, Day = 1 },
                     new Google.Type.Date { Year = -1, Month = 1, Day = 1 }, new Google.Type.Date { Year = int.MaxValue, Month = int.MinValue, Day = 5 },
                 })
        {
            var request = new CustomerApi.CreateCustomerRequest
            {
                Profile = new CustomerApi.CustomerProfile { Name = "孙丽", Phone = CustomerProfileTests.UniquePhone(), Birthday = bad },
            };
            var ex = await Rpc.FailsWith(StatusCode.InvalidArgument, () => _customers.CreateCustomerAsync(request, Deadline()).ResponseAsync);
            Assert.Contains("profile.birthday", ex.Fields());
        }
    }

    [Fact]
    public async Task A_NUL_character_in_any_string_is_INVALID_ARGUMENT_naming_the_field()
    {
        var create = new CustomerApi.CreateCustomerRequest
        {
            Profile = new CustomerApi.CustomerProfile { Name = "周\0杰", Phone = CustomerProfileTests.UniquePhone(), City = "\0" },
        };
        create.Profile.Tags.Add("vip");
        create.Profile.Tags.Add("a\0b");
        var ex = await Rpc.FailsWith(StatusCode.InvalidArgument, () => _customers.CreateCustomerAsync(create, Deadline()).ResponseAsync);
        Assert.Equal(["profile.city", "profile.name", "profile.tags[1]"], ex.Fields());

        var order = Order(await NewCustomerAsync());
        order.Lines[0].ProductName = "金\0戒指";
        order.StoreId = "S\0";
        ex = await Rpc.FailsWith(StatusCode.InvalidArgument, () => _customers.RecordOrderAsync(order, Deadline()).ResponseAsync);
        Assert.Equal(["lines[0].product_name", "store_id"], ex.Fields());

        var adjust = new LoyaltyApi.AdjustPointsRequest
        {
            CustomerId = Guid.NewGuid().ToString(), Points = 10, Reason = "goodwill\0", IdempotencyKey = "k-" + Guid.NewGuid(),
        };
        ex = await Rpc.FailsWith(StatusCode.InvalidArgument, () => _loyalty.AdjustPointsAsync(adjust, Deadline()).ResponseAsync);
        Assert.Equal(["reason"], ex.Fields());
    }

    [Fact]
    public async Task A_body_that_is_not_a_valid_protobuf_message_is_INVALID_ARGUMENT_not_UNKNOWN()
    {
        var bytes = Marshallers.Create(b => b, b => b);
        var invoker = suite.Customer.Channel.CreateCallInvoker();
        var getCustomer = new Method<byte[], byte[]>(MethodType.Unary, "crm.customer.v1.CustomerService", "GetCustomer", bytes, bytes);
        foreach (var payload in new byte[][]
                 {
                     [0x0A, 0x03, 0x61, 0xFF, 0xFE], // id: invalid UTF-8
                     [0x0A, 0x7F, 0x41],             // a length past the end of the message
                     [0x08, 0xFF, 0xFF],             // a truncated varint
                     [0x00, 0x01],                   // field number 0
                 })
        {
            var ex = await Rpc.FailsWith(StatusCode.InvalidArgument, () =>
                invoker.AsyncUnaryCall(getCustomer, null, Deadline(), payload).ResponseAsync);
            Assert.Contains("could not be parsed", ex.Status.Detail);
        }
    }

    [Fact]
    public async Task Integer_extremes_are_INVALID_ARGUMENT_not_overflow()
    {
        foreach (var points in new[] { long.MinValue, long.MaxValue, long.MinValue + 1, -10_000_001L })
        {
            var adjust = new LoyaltyApi.AdjustPointsRequest
            {
                CustomerId = Guid.NewGuid().ToString(), Points = points, Reason = "correction", IdempotencyKey = "k-" + Guid.NewGuid(),
            };
            var ex = await Rpc.FailsWith(StatusCode.InvalidArgument, () => _loyalty.AdjustPointsAsync(adjust, Deadline()).ResponseAsync);
            Assert.Equal(["points"], ex.Fields());
        }

        var order = Order(await NewCustomerAsync());
        order.Lines[0].Quantity = int.MaxValue;
        var tooMany = await Rpc.FailsWith(StatusCode.InvalidArgument, () => _customers.RecordOrderAsync(order, Deadline()).ResponseAsync);
        Assert.Equal(["lines[0].quantity"], tooMany.Fields());

        foreach (var days in new[] { int.MinValue, int.MaxValue, -1, 0 })
            await Rpc.FailsWith(StatusCode.InvalidArgument, () =>
                _loyalty.ListExpiringPointsAsync(new LoyaltyApi.ListExpiringPointsRequest { WithinDays = days, PageSize = int.MinValue }, Deadline()).ResponseAsync);
    }

    [Fact]
    public async Task A_30_KB_unknown_update_mask_path_is_answered_within_a_second_with_a_cut_message()
    {
        var id = await NewCustomerAsync();
        var request = new CustomerApi.UpdateCustomerRequest
        {
            Id = id, Version = 1, Profile = new CustomerApi.CustomerProfile(), UpdateMask = new FieldMask(),
        };
        request.UpdateMask.Paths.Add(new string('x', 30_000));
        var watch = Stopwatch.StartNew();
        var ex = await Rpc.FailsWith(StatusCode.InvalidArgument, () => _customers.UpdateCustomerAsync(request, Deadline()).ResponseAsync);
        watch.Stop();
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(1), $"answered after {watch.Elapsed.TotalMilliseconds:0} ms");
        Assert.Contains("update_mask", ex.Fields()[0]);
        Assert.True(ex.Status.Detail.Length <= 1024, $"the status message is {ex.Status.Detail.Length} characters long");
        Assert.DoesNotContain(new string('x', 100), ex.Status.Detail);

        // An unknown id is echoed cut too.
        var get = await Rpc.FailsWith(StatusCode.InvalidArgument, () =>
            _customers.GetCustomerAsync(new CustomerApi.GetCustomerRequest { Id = new string('y', 20_000) }, Deadline()).ResponseAsync);
        Assert.True(get.Status.Detail.Length <= 1024, $"the status message is {get.Status.Detail.Length} characters long");
    }

    [Fact]
    public async Task Strings_and_lists_longer_than_their_declared_maximum_are_INVALID_ARGUMENT()
    {
        var customerId = await NewCustomerAsync();
        var longName = Order(customerId);
        longName.Lines[0].ProductName = new string('金', 100_000);
        longName.Lines.Add(new CustomerApi.OrderLine { Sku = new string('S', 65), Quantity = 1, UnitPrice = new Money { Amount = "1.00" } });
        var ex = await Rpc.FailsWith(StatusCode.InvalidArgument, () => _customers.RecordOrderAsync(longName, Deadline()).ResponseAsync);
        Assert.Equal(["lines[0].product_name", "lines[1].sku"], ex.Fields());

        var manyLines = Order(customerId);
        for (var i = 0; i < 10_000; i++) manyLines.Lines.Add(new CustomerApi.OrderLine { Sku = "S", Quantity = 1, UnitPrice = new Money { Amount = "1.00" } });
        var watch = Stopwatch.StartNew();
        ex = await Rpc.FailsWith(StatusCode.InvalidArgument, () => _customers.RecordOrderAsync(manyLines, Deadline()).ResponseAsync);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(1), $"answered after {watch.Elapsed.TotalMilliseconds:0} ms");
        Assert.Equal(["lines"], ex.Fields());

        var tags = new CustomerApi.CreateCustomerRequest { Profile = new CustomerApi.CustomerProfile { Name = "郑", Phone = CustomerProfileTests.UniquePhone() } };
        for (var i = 0; i < 10_000; i++) tags.Profile.Tags.Add("t" + i);
        ex = await Rpc.FailsWith(StatusCode.InvalidArgument, () => _customers.CreateCustomerAsync(tags, Deadline()).ResponseAsync);
        Assert.Equal(["profile.tags"], ex.Fields());
    }

    [Fact]
    public async Task The_same_AdjustPoints_key_for_two_customers_at_once_is_ALREADY_EXISTS_for_one()
    {
        for (var round = 0; round < 8; round++)
        {
            var key = "race-" + Guid.NewGuid();
            var calls = new[] { Guid.NewGuid(), Guid.NewGuid() }.Select(customer => Outcome(_loyalty.AdjustPointsAsync(new LoyaltyApi.AdjustPointsRequest
            {
                CustomerId = customer.ToString(), Points = 25, Reason = "goodwill", IdempotencyKey = key,
            }, Deadline()).ResponseAsync));
            var outcomes = await Task.WhenAll(calls);
            Assert.Equal([StatusCode.OK, StatusCode.AlreadyExists], outcomes.Order());
        }
    }

    [Fact]
    public async Task The_same_refund_id_on_two_orders_at_once_is_ALREADY_EXISTS_for_one()
    {
        var customerId = await NewCustomerAsync();
        for (var round = 0; round < 8; round++)
        {
            var first = await _customers.RecordOrderAsync(Order(customerId), Deadline());
            var second = await _customers.RecordOrderAsync(Order(customerId), Deadline());
            var refundId = "RF-" + Guid.NewGuid();
            var outcomes = await Task.WhenAll(new[] { first.Id, second.Id }.Select(orderId => Outcome(_customers.RefundOrderAsync(
                new CustomerApi.RefundOrderRequest { RefundId = refundId, OrderId = orderId, Amount = new Money { Amount = "10.00" } },
                Deadline()).ResponseAsync)));
            Assert.Equal([StatusCode.OK, StatusCode.AlreadyExists], outcomes.Order());
        }
    }

    [Fact]
    public async Task The_same_phone_or_email_registered_twice_at_once_is_ALREADY_EXISTS_for_one()
    {
        for (var round = 0; round < 6; round++)
        {
            var phone = CustomerProfileTests.UniquePhone();
            var email = $"race-{Guid.NewGuid():N}@example.com";
            var outcomes = await Task.WhenAll(Enumerable.Range(0, 2).Select(i => Outcome(_customers.CreateCustomerAsync(new CustomerApi.CreateCustomerRequest
            {
                Profile = new CustomerApi.CustomerProfile
                {
                    Name = "吴" + i, Phone = round % 2 == 0 ? phone : CustomerProfileTests.UniquePhone(), Email = round % 2 == 0 ? "" : email,
                },
            }, Deadline()).ResponseAsync)));
            Assert.Equal([StatusCode.OK, StatusCode.AlreadyExists], outcomes.Order());
        }
    }

    private static async Task<StatusCode> Outcome<T>(Task<T> call)
    {
        try
        {
            await call;
            return StatusCode.OK;
        }
        catch (RpcException ex)
        {
            Assert.True(ex.StatusCode == StatusCode.AlreadyExists, $"{ex.StatusCode}: {ex.Status.Detail}");
            return ex.StatusCode;
        }
    }
}
