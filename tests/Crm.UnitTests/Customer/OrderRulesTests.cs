using Crm.Common.V1;
using Crm.Customer.Orders;
using Crm.Customer.V1;
using Crm.ServiceDefaults.Errors;
using Google.Protobuf.WellKnownTypes;
using Microsoft.Extensions.Time.Testing;

namespace Crm.UnitTests.Customer;

public class OrderRulesTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 23, 8, 0, 0, TimeSpan.Zero);
    private static readonly TimeProvider Clock = new FakeTimeProvider(Now);

    private static RecordOrderRequest ValidOrder()
    {
        var request = new RecordOrderRequest
        {
            CustomerId = "0196f1a2-0000-7000-8000-000000000001", ExternalOrderId = " ERP-2026-0001 ", StoreId = "SZ-01",
            Channel = "Store", AmountPaid = new Money { Amount = "10000.50" }, PaymentMethod = "alipay",
            PaidAt = Timestamp.FromDateTimeOffset(Now.AddHours(-1)),
        };
        request.Lines.Add(new OrderLine { Sku = "RING-18K-01", ProductName = "18K 金戒指", Quantity = 1, UnitPrice = new Money { Amount = "10800.00" } });
        return request;
    }

    [Fact]
    public void A_valid_order_keeps_the_exact_amount()
    {
        var order = OrderRules.Validate(ValidOrder(), Clock);
        Assert.Equal(10000.50m, order.AmountPaid);
        Assert.Equal("ERP-2026-0001", order.ExternalOrderId);
        Assert.Equal("store", order.Channel);
        Assert.Equal(10800.00m, Assert.Single(order.Lines).UnitPrice);
    }

    [Theory]
    [InlineData("0", "must be greater than zero; got 0.")]
    [InlineData("-5.00", "must be greater than zero; got -5.00.")]
    [InlineData("12.345", "'12.345' is not an amount in yuan with at most two decimals.")]
    [InlineData("1e3", "'1e3' is not an amount in yuan with at most two decimals.")]
    [InlineData("", "is required, in yuan with at most two decimals, e.g. \"199.00\".")]
    public void Rejects_amounts_that_are_not_positive_yuan(string amount, string description)
    {
        var request = ValidOrder();
        request.AmountPaid = new Money { Amount = amount };
        var ex = Assert.Throws<ValidationException>(() => OrderRules.Validate(request, Clock));
        Assert.Equal(new FieldViolation("amount_paid", description), Assert.Single(ex.Violations));
    }

    [Fact]
    public void Reports_empty_lines_missing_ids_and_future_payment_together()
    {
        var request = ValidOrder();
        request.Lines.Clear();
        request.CustomerId = "not-a-uuid";
        request.ExternalOrderId = "";
        request.PaidAt = Timestamp.FromDateTimeOffset(Now.AddHours(1));
        var ex = Assert.Throws<ValidationException>(() => OrderRules.Validate(request, Clock));
        Assert.Equal(["customer_id", "external_order_id", "lines", "paid_at"], ex.Violations.Select(v => v.Field).Order());
    }

    [Fact]
    public void Reports_bad_lines_by_index()
    {
        var request = ValidOrder();
        request.Lines.Add(new OrderLine { Sku = "", Quantity = 0, UnitPrice = new Money { Amount = "-1" } });
        var ex = Assert.Throws<ValidationException>(() => OrderRules.Validate(request, Clock));
        Assert.Equal(["lines[1].quantity", "lines[1].sku", "lines[1].unit_price"], ex.Violations.Select(v => v.Field).Order());
    }

    [Fact]
    public void A_refund_without_amount_is_a_full_refund_request()
    {
        var refund = OrderRules.Validate(new RefundOrderRequest { RefundId = "RF-1", OrderId = "0196f1a2-0000-7000-8000-000000000009" }, Clock);
        Assert.Null(refund.Amount);
        Assert.Equal(Now.UtcDateTime, refund.RefundedAt);
    }
}
