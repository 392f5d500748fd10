namespace Crm.Contracts;

public sealed record OrderLineItem(string Sku, string? ProductName, int Quantity, decimal UnitPrice);

/// <summary>An order was paid. AmountPaid is what the customer actually paid, in yuan (CNY).</summary>
public sealed record OrderPaid(
    Guid OrderId,
    Guid CustomerId,
    string ExternalOrderId,
    string? StoreId,
    string Channel,
    IReadOnlyList<OrderLineItem> Lines,
    decimal AmountPaid,
    DateTimeOffset PaidAt);

/// <summary>
/// Part or all of an order was refunded. Amount is this refund; TotalRefunded is the order's running total
/// after it, never more than AmountPaid. OrderId names the payment the refund reverses.
/// </summary>
public sealed record OrderRefunded(
    string RefundId,
    Guid OrderId,
    Guid CustomerId,
    string ExternalOrderId,
    decimal Amount,
    decimal TotalRefunded,
    decimal AmountPaid,
    DateTimeOffset RefundedAt);
