using System.Globalization;
using System.Text.Json;
using Crm.Common.V1;
using Crm.Contracts;
using Crm.Customer.V1;
using Google.Protobuf.WellKnownTypes;

namespace Crm.Bench.Partner;

/// <summary>One generated order: what the partner streams and what the COPY ceiling writes.</summary>
public sealed record GeneratedOrder(
    long Line, int Customer, bool ByRef, string ExternalOrderId, string StoreId, string Channel, OrderLineItem[] Lines,
    decimal AmountPaid, string PaymentMethod, DateTime PaidAt);

/// <summary>
/// The benchmark's orders from a fixed seed: the same sequence every run and for both the import and the COPY
/// ceiling. Orders name a seeded customer by the suite's id or (share <c>refShare</c>) by its ERP id; 1-3 lines each.
/// </summary>
public sealed class OrderGenerator(int orders, int customers, double refShare, int seed, DateTime firstPaidAt)
{
    private static readonly string[] Channels = ["store", "tmall", "jd", "wechat", "web"];
    private static readonly (string Sku, string Name, decimal Price)[] Products =
    [
        ("RING-18K-001", "18K 金戒指", 1999.00m), ("NECK-PT-014", "铂金项链", 5280.00m), ("EAR-AU-207", "黄金耳钉", 899.50m),
        ("BANG-JD-033", "翡翠手镯", 12800.00m), ("PEND-DM-120", "钻石吊坠", 7650.00m), ("CHAIN-AG-09", "银手链", 320.00m),
    ];
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public int Count => orders;

    public IEnumerable<GeneratedOrder> All()
    {
        var random = new Random(seed);
        for (var i = 0; i < orders; i++)
        {
            var lines = new OrderLineItem[1 + random.Next(3)];
            decimal total = 0;
            for (var l = 0; l < lines.Length; l++)
            {
                var p = Products[random.Next(Products.Length)];
                var quantity = 1 + random.Next(2);
                lines[l] = new OrderLineItem(p.Sku, p.Name, quantity, p.Price);
                total += p.Price * quantity;
            }
            var discount = random.Next(4) == 0 ? decimal.Round(total * 0.05m, 2) : 0m;
            yield return new GeneratedOrder(
                i + 1, random.Next(customers), random.NextDouble() < refShare, $"SO-{seed}-{i:D8}", $"SZ-{random.Next(200):D3}",
                Channels[random.Next(Channels.Length)], lines, total - discount, random.Next(2) == 0 ? "card" : "alipay",
                firstPaidAt.AddSeconds(i * 10L));
        }
    }

    public static ImportOrderItem Item(GeneratedOrder o, string batchId, Guid[] customerIds)
    {
        var request = new RecordOrderRequest
        {
            ExternalOrderId = o.ExternalOrderId, StoreId = o.StoreId, Channel = o.Channel,
            AmountPaid = new Money { Amount = Amount(o.AmountPaid) }, PaymentMethod = o.PaymentMethod,
            PaidAt = Timestamp.FromDateTime(o.PaidAt),
        };
        if (o.ByRef) request.CustomerRef = new ExternalRef { System = "erp", Id = CustomerRef(o.Customer) };
        else request.CustomerId = customerIds[o.Customer].ToString();
        foreach (var line in o.Lines)
            request.Lines.Add(new OrderLine { Sku = line.Sku, ProductName = line.ProductName ?? "", Quantity = line.Quantity, UnitPrice = new Money { Amount = Amount(line.UnitPrice) } });
        return new ImportOrderItem { BatchId = batchId, Line = o.Line, Order = request };
    }

    /// <summary>The lines as the service stores them (orders.lines jsonb).</summary>
    public static string LinesJson(GeneratedOrder o) => JsonSerializer.Serialize(o.Lines, Json);

    public static string CustomerRef(int customer) => $"C{customer:D8}";

    private static string Amount(decimal value) => value.ToString("0.00", CultureInfo.InvariantCulture);
}
