using System.Reflection;
using Crm.Common.V1;
using Crm.ServiceDefaults.Errors;
using Crm.ServiceDefaults.Grpc;
using Google.Protobuf.Reflection;
using Google.Protobuf.WellKnownTypes;
using CustomerApi = Crm.Customer.V1;
using LoyaltyApi = Crm.Loyalty.V1;

namespace Crm.UnitTests.Platform;

/// <summary>Every request field's limits are declared in the .proto, and the request guard enforces them by descriptor.</summary>
public class FieldLimitsTests
{
    /// <summary>Every file of the protos project that declares a service: a new service is covered by being compiled there.</summary>
    public static IEnumerable<FileDescriptor> ServiceFiles() =>
        typeof(Money).Assembly.GetTypes()
            .Select(t => t.GetProperty("Descriptor", BindingFlags.Public | BindingFlags.Static))
            .Where(p => p?.PropertyType == typeof(FileDescriptor))
            .Select(p => (FileDescriptor)p!.GetValue(null)!)
            .Where(f => f.Services.Count > 0);

    [Fact]
    public void Every_string_and_repeated_field_of_every_request_declares_its_maximum()
    {
        var files = ServiceFiles().ToList();
        Assert.Contains(files, f => f.Package == "crm.customer.v1");
        Assert.Contains(files, f => f.Package == "crm.loyalty.v1");

        var missing = new List<string>();
        var seen = new HashSet<MessageDescriptor>();
        void Walk(MessageDescriptor message)
        {
            if (!seen.Add(message) || message.FullName.StartsWith("google.", StringComparison.Ordinal)) return;
            foreach (var field in message.Fields.InFieldNumberOrder())
            {
                var name = $"{message.FullName}.{field.Name}";
                var isMask = field.FieldType == FieldType.Message && field.MessageType.FullName == FieldMask.Descriptor.FullName;
                if ((field.IsRepeated || isMask) && FieldLimits.MaxItems(field) is null)
                    missing.Add($"{name}: (crm.common.v1.max_items)");
                if ((field.FieldType == FieldType.String || isMask) && FieldLimits.MaxLength(field) is null)
                    missing.Add($"{name}: (crm.common.v1.max_length)");
                if (field.FieldType == FieldType.Bytes && FieldLimits.MaxLength(field) is null)
                    missing.Add($"{name}: (crm.common.v1.max_length) (bytes)");
                if (field.FieldType == FieldType.Message) Walk(field.MessageType);
            }
        }
        foreach (var method in files.SelectMany(f => f.Services).SelectMany(s => s.Methods)) Walk(method.InputType);

        Assert.True(missing.Count == 0, "Request fields without a declared maximum:\n" + string.Join("\n", missing));
    }

    [Fact]
    public void The_option_numbers_the_guard_reads_are_the_ones_the_proto_declares()
    {
        Assert.Equal(FieldLimits.MaxLengthOption, FieldLimitsExtensions.MaxLength.FieldNumber);
        Assert.Equal(FieldLimits.MaxItemsOption, FieldLimitsExtensions.MaxItems.FieldNumber);
        var lines = CustomerApi.RecordOrderRequest.Descriptor.FindFieldByName("lines");
        Assert.Equal(500, FieldLimits.MaxItems(lines));
        Assert.Equal(lines.GetOptions().GetExtension(FieldLimitsExtensions.MaxItems), FieldLimits.MaxItems(lines));
        Assert.Equal(64, FieldLimits.MaxLength(CustomerApi.OrderLine.Descriptor.FindFieldByName("sku")));
        Assert.Null(FieldLimits.MaxItems(CustomerApi.OrderLine.Descriptor.FindFieldByName("sku")));
    }
}

public class RequestChecksTests
{
    private static CustomerApi.RecordOrderRequest Order()
    {
        var order = new CustomerApi.RecordOrderRequest
        {
            CustomerId = Guid.NewGuid().ToString(), ExternalOrderId = "ERP-1", Channel = "store",
            AmountPaid = new Money { Amount = "10.00" }, PaidAt = Timestamp.FromDateTime(new DateTime(2026, 3, 1, 0, 0, 0, DateTimeKind.Utc)),
        };
        order.Lines.Add(new CustomerApi.OrderLine { Sku = "RING-1", Quantity = 1, UnitPrice = new Money { Amount = "10.00" } });
        return order;
    }

    private static List<string> Fields(Google.Protobuf.IMessage message) => RequestChecks.Collect(message).Select(v => v.Field).ToList();

    [Fact]
    public void A_valid_request_passes() => Assert.Empty(RequestChecks.Collect(Order()));

    [Fact]
    public void Violations_name_the_full_path_of_nested_and_repeated_fields()
    {
        var order = Order();
        order.Lines.Add(new CustomerApi.OrderLine { Sku = new string('S', 65), ProductName = "金\0", UnitPrice = new Money { Amount = new string('9', 33) } });
        order.PaidAt = new Timestamp { Seconds = 253_402_300_800 };
        Assert.Equal(["lines[1].sku", "lines[1].product_name", "lines[1].unit_price.amount", "paid_at"], Fields(order));
    }

    [Theory]
    [InlineData(253_402_300_800, 0)]
    [InlineData(-62_135_596_801, 0)]
    [InlineData(0, -1)]
    [InlineData(0, 1_000_000_000)]
    [InlineData(long.MinValue, 0)]
    public void Timestamps_outside_their_range_are_violations(long seconds, int nanos)
    {
        var refund = new CustomerApi.RefundOrderRequest { RefundedAt = new Timestamp { Seconds = seconds, Nanos = nanos } };
        Assert.Equal(["refunded_at"], Fields(refund));
    }

    [Fact]
    public void The_extremes_of_the_timestamp_range_are_accepted()
    {
        Assert.Empty(RequestChecks.Collect(new CustomerApi.RefundOrderRequest { RefundedAt = new Timestamp { Seconds = -62_135_596_800 } }));
        Assert.Empty(RequestChecks.Collect(new CustomerApi.RefundOrderRequest { RefundedAt = new Timestamp { Seconds = 253_402_300_799, Nanos = 999_999_999 } }));
    }

    [Fact]
    public void Dates_unknown_enums_masks_and_lists_are_checked()
    {
        var update = new CustomerApi.UpdateCustomerRequest
        {
            Profile = new CustomerApi.CustomerProfile { Gender = (CustomerApi.Gender)99, Birthday = new Google.Type.Date { Year = 10_000, Month = 1, Day = 1 } },
            UpdateMask = new FieldMask(),
        };
        update.UpdateMask.Paths.Add(new string('x', 30_000));
        for (var i = 0; i < 51; i++) update.Profile.Tags.Add("t" + i);
        Assert.Equal(["profile.gender", "profile.birthday", "profile.tags", "update_mask.paths[0]"], Fields(update));

        var activity = new LoyaltyApi.RegisterActivityRequest { Type = (LoyaltyApi.ActivityType)(-1) };
        Assert.Equal(["type"], Fields(activity));
    }

    [Fact]
    public void Walking_stops_after_a_bounded_number_of_violations()
    {
        var profile = new CustomerApi.CustomerProfile();
        for (var i = 0; i < 50; i++) profile.Tags.Add("\0");
        var violations = RequestChecks.Collect(new CustomerApi.CreateCustomerRequest { Profile = profile });
        Assert.Equal(RequestChecks.MaxViolations, violations.Count);
    }

    [Fact]
    public void Guard_throws_a_validation_exception()
    {
        var ex = Assert.Throws<ValidationException>(() =>
            RequestChecks.ThrowIfInvalid(new LoyaltyApi.AdjustPointsRequest { Reason = "a\0b" }));
        Assert.Equal("reason", Assert.Single(ex.Violations).Field);
    }
}

public class EchoTests
{
    [Fact]
    public void Short_values_are_echoed_whole() => Assert.Equal("order-1", Echo.Cut("order-1"));

    [Fact]
    public void Long_values_are_cut_to_64_characters_and_an_ellipsis()
    {
        var cut = Echo.Cut(new string('x', 30_000));
        Assert.Equal(65, cut.Length);
        Assert.EndsWith("…", cut);
    }

    [Fact]
    public void A_surrogate_pair_is_never_split()
    {
        var value = new string('a', 63) + "😀" + "tail";
        Assert.Equal(new string('a', 63) + "…", Echo.Cut(value));
    }
}

public class MoneyExtremesTests
{
    [Theory]
    [InlineData("1e400")]
    [InlineData("1E5")]
    [InlineData("99999999999999999999999999999999")]
    [InlineData("0.001")]
    [InlineData("0.10000000000000000001")]
    [InlineData("NaN")]
    [InlineData("Infinity")]
    [InlineData("--1")]
    [InlineData("1\0")]
    public void Amounts_with_exponents_huge_precision_or_junk_are_refused(string text) =>
        Assert.False(new Money { Amount = text }.TryToDecimal(out _));
}

public class NumericExtremesTests
{
    [Theory]
    [InlineData("10000000000.00")]     // 100 of them would not fit numeric(14,2)
    [InlineData("999999999999.99")]
    [InlineData("1000000000000.00")]
    public void A_points_and_cash_price_too_large_for_100_redemptions_is_refused(string amount)
    {
        var reward = new LoyaltyApi.Reward
        {
            Id = "ring-box", Name = "Ring box", Kind = LoyaltyApi.RewardKind.PointsAndCash, PointsCost = 500, Stock = 5, Active = true,
            CashPrice = new Money { Amount = amount },
        };
        var tiers = new Crm.Loyalty.Accounts.TierTable(Crm.Loyalty.LoyaltyOptions.DefaultTiers);
        var ex = Assert.Throws<ValidationException>(() => Crm.Loyalty.Rewards.RewardRules.Validate(reward, tiers));
        Assert.Equal("reward.cash_price", Assert.Single(ex.Violations).Field);
    }

    [Fact]
    public void The_largest_cash_price_is_accepted()
    {
        var reward = new LoyaltyApi.Reward
        {
            Id = "ring-box", Name = "Ring box", Kind = LoyaltyApi.RewardKind.PointsAndCash, PointsCost = 500, Stock = 5, Active = true,
            CashPrice = new Money { Amount = "9999999999.99" },
        };
        var tiers = new Crm.Loyalty.Accounts.TierTable(Crm.Loyalty.LoyaltyOptions.DefaultTiers);
        Assert.Equal(9_999_999_999.99m, Crm.Loyalty.Rewards.RewardRules.Validate(reward, tiers).CashPrice);
    }
}
