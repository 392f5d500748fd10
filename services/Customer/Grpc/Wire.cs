using Crm.Common.V1;
using Crm.Customer.Customers;
using Crm.Customer.Orders;
using Crm.Customer.V1;
using Google.Protobuf.WellKnownTypes;

namespace Crm.Customer.Grpc;

/// <summary>Domain records to protobuf messages.</summary>
internal static class Wire
{
    public static V1.UpsertOutcome ToProto(Customers.UpsertOutcome outcome) => outcome switch
    {
        Customers.UpsertOutcome.Created => V1.UpsertOutcome.Created,
        Customers.UpsertOutcome.Updated => V1.UpsertOutcome.Updated,
        _ => V1.UpsertOutcome.Unchanged,
    };

    public static V1.Customer ToProto(CustomerRecord c)
    {
        var p = c.Profile;
        var profile = new CustomerProfile
        {
            Name = p.Name, Gender = (Gender)p.Gender, Phone = p.Phone, Email = p.Email ?? "", Region = p.Region ?? "",
            City = p.City ?? "", Address = p.Address ?? "", Education = p.Education ?? "", Occupation = p.Occupation ?? "",
            SourceChannel = p.SourceChannel ?? "", MarketingConsent = p.MarketingConsent,
            Birthday = p.Birthday is { } b ? new Google.Type.Date { Year = b.Year, Month = b.Month, Day = b.Day } : null,
        };
        profile.Preferences.AddRange(p.Preferences);
        profile.Tags.AddRange(p.Tags);
        var customer = new V1.Customer
        {
            Id = c.Id.ToString(), Profile = profile, Version = c.Version,
            CreatedAt = Timestamp.FromDateTime(c.CreatedAt), UpdatedAt = Timestamp.FromDateTime(c.UpdatedAt),
        };
        customer.ExternalRefs.AddRange(c.ExternalIds.Select(e => new ExternalRef { System = e.System, Id = e.Id }));
        return customer;
    }

    public static Order ToProto(OrderRecord o)
    {
        var order = new Order
        {
            Id = o.Id.ToString(), CustomerId = o.CustomerId.ToString(), ExternalOrderId = o.ExternalOrderId,
            StoreId = o.StoreId ?? "", Channel = o.Channel, AmountPaid = Money.FromDecimal(o.AmountPaid),
            PaymentMethod = o.PaymentMethod ?? "", PaidAt = Timestamp.FromDateTime(o.PaidAt),
            AmountRefunded = Money.FromDecimal(o.AmountRefunded), Status = Status(o),
            RecordedAt = Timestamp.FromDateTime(o.RecordedAt),
        };
        order.Lines.AddRange(o.Lines.Select(l => new OrderLine
        {
            Sku = l.Sku, ProductName = l.ProductName ?? "", Quantity = l.Quantity, UnitPrice = Money.FromDecimal(l.UnitPrice),
        }));
        return order;
    }

    public static Refund ToProto(RefundRecord r, OrderRecord o) => new()
    {
        RefundId = r.RefundId, OrderId = r.OrderId.ToString(), CustomerId = o.CustomerId.ToString(),
        Amount = Money.FromDecimal(r.Amount), Reason = r.Reason ?? "", RefundedAt = Timestamp.FromDateTime(r.RefundedAt),
        OrderAmountRefunded = Money.FromDecimal(o.AmountRefunded), OrderStatus = Status(o),
    };

    private static OrderStatus Status(OrderRecord o) =>
        o.AmountRefunded == 0 ? OrderStatus.Paid
        : o.AmountRefunded < o.AmountPaid ? OrderStatus.PartiallyRefunded
        : OrderStatus.Refunded;
}
