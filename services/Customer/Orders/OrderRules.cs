using Crm.ServiceDefaults.Data;
using Crm.Common.V1;
using Crm.Contracts;
using Crm.ServiceDefaults.Errors;
using Proto = Crm.Customer.V1;

namespace Crm.Customer.Orders;

/// <summary>A validated order as ERP or a store pushed it.</summary>
public sealed record NewOrder(
    Guid CustomerId, string ExternalOrderId, string? StoreId, string Channel, IReadOnlyList<OrderLineItem> Lines,
    decimal AmountPaid, string? PaymentMethod, DateTime PaidAt);

public sealed record NewRefund(string RefundId, Guid OrderId, decimal? Amount, string? Reason, DateTime RefundedAt);

/// <summary>Validation of RecordOrder and RefundOrder: every bad field reported at once, nothing written.</summary>
public static class OrderRules
{
    public const decimal MaxAmount = 999_999_999_999.99m;
    public const int MaxQuantity = 100_000;
    /// <summary>Store clocks drift; a payment a few minutes "in the future" is still accepted.</summary>
    private static readonly TimeSpan ClockSkew = TimeSpan.FromMinutes(5);

    /// <param name="customerId">The customer its customer_ref was resolved to, if it names one (customer_id is then not read).</param>
    public static NewOrder Validate(Proto.RecordOrderRequest r, TimeProvider clock, Guid? customerId = null)
    {
        var v = new Validator();
        var customer = customerId ?? Ids.Parse(r.CustomerId, "customer_id", v);
        var externalId = Key(r.ExternalOrderId, "external_order_id", v);
        var channel = r.Channel.Trim().ToLowerInvariant();
        v.Require(channel.Length is > 0 and <= 50, "channel", "is required (store, tmall, jd, wechat, web, ...), at most 50 characters.");
        var storeId = Optional(r.StoreId, "store_id", v);
        var paymentMethod = Optional(r.PaymentMethod, "payment_method", v);

        v.Require(r.Lines.Count > 0, "lines", "must have at least one line.");
        v.Require(r.Lines.Count <= 500, "lines", "must have at most 500 lines.");
        var lines = new List<OrderLineItem>(r.Lines.Count);
        for (var i = 0; i < r.Lines.Count; i++)
        {
            var line = r.Lines[i];
            // Field paths and messages are built only for a bad line: the bulk import checks every line of a million orders.
            var sku = line.Sku.Trim();
            if (sku.Length is not (> 0 and <= 64)) v.Add($"lines[{i}].sku", "is required, at most 64 characters.");
            if (line.Quantity is not (> 0 and <= MaxQuantity)) v.Add($"lines[{i}].quantity", $"must be between 1 and {MaxQuantity}; got {line.Quantity}.");
            var (price, priceError) = CheckAmount(line.UnitPrice, allowZero: true);
            if (priceError is not null) v.Add($"lines[{i}].unit_price", priceError);
            lines.Add(new OrderLineItem(sku, string.IsNullOrWhiteSpace(line.ProductName) ? null : line.ProductName.Trim(), line.Quantity, price ?? 0));
        }

        var paid = Amount(r.AmountPaid, "amount_paid", v, allowZero: false);
        var paidAt = Time(r.PaidAt, "paid_at", v, clock, required: true);
        v.ThrowIfInvalid();
        return new NewOrder(customer, externalId, storeId, channel, lines, paid!.Value, paymentMethod, paidAt!.Value);
    }

    public static NewRefund Validate(Proto.RefundOrderRequest r, TimeProvider clock)
    {
        var v = new Validator();
        var refundId = Key(r.RefundId, "refund_id", v);
        var orderId = Ids.Parse(r.OrderId, "order_id", v);
        var amount = r.Amount is null ? null : Amount(r.Amount, "amount", v, allowZero: false);
        var reason = Optional(r.Reason, "reason", v, 500);
        var at = Time(r.RefundedAt, "refunded_at", v, clock, required: false);
        v.ThrowIfInvalid();
        return new NewRefund(refundId, orderId, amount, reason, at ?? clock.UtcNowForDb());
    }

    private static decimal? Amount(Money? money, string field, Validator v, bool allowZero)
    {
        var (value, error) = CheckAmount(money, allowZero);
        if (error is not null) v.Add(field, error);
        return value;
    }

    /// <summary>The amount (also when out of range) and what is wrong with it, if anything; the caller names the field, so
    /// a valid line's field path is never built.</summary>
    private static (decimal? Value, string? Error) CheckAmount(Money? money, bool allowZero)
    {
        if (money is null || string.IsNullOrWhiteSpace(money.Amount))
            return (null, "is required, in yuan with at most two decimals, e.g. \"199.00\".");
        if (!money.TryToDecimal(out var value))
            return (null, $"'{Echo.Cut(money.Amount)}' is not an amount in yuan with at most two decimals.");
        if (value < 0 || (!allowZero && value == 0))
            return (value, allowZero ? "must not be negative." : $"must be greater than zero; got {money.Amount}.");
        return (value, value > MaxAmount ? $"must be at most {MaxAmount}." : null);
    }

    private static DateTime? Time(Google.Protobuf.WellKnownTypes.Timestamp? ts, string field, Validator v, TimeProvider clock, bool required)
    {
        if (ts is null)
        {
            if (required) v.Add(field, "is required.");
            return null;
        }
        if (ts.Seconds is < -62_135_596_800 or > 253_402_300_799 || ts.Nanos is < 0 or > 999_999_999)
        {
            v.Add(field, "is not a valid timestamp (0001-01-01..9999-12-31, nanos 0..999999999).");
            return null;
        }
        var time = ts.ToDateTime().ToMicroseconds();
        if (time > clock.GetUtcNow().UtcDateTime + ClockSkew) v.Add(field, "cannot be in the future.");
        else if (time.Year < 2000) v.Add(field, "must be in the year 2000 or later.");
        return time;
    }

    private static string Key(string value, string field, Validator v)
    {
        var key = value.Trim();
        v.Require(key.Length is > 0 and <= 100, field, "is required, at most 100 characters.");
        return key;
    }

    private static string? Optional(string value, string field, Validator v, int max = 100)
    {
        var text = value.Trim();
        if (text.Length > max) v.Add(field, $"must be at most {max} characters."); // the message only for a bad value
        return text.Length == 0 ? null : text;
    }
}
