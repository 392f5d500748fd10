using Crm.Contracts;
using Crm.Customer.Customers;

namespace Crm.UnitTests.Customer;

public class PhoneNumberTests
{
    [Theory]
    [InlineData("13800138000", "+8613800138000")]
    [InlineData("138 0013 8000", "+8613800138000")]
    [InlineData("138-0013-8000", "+8613800138000")]
    [InlineData("+86 138 0013 8000", "+8613800138000")]
    [InlineData("008613800138000", "+8613800138000")]
    [InlineData("8613800138000", "+8613800138000")]
    [InlineData("(+86) 199-1234-5678", "+8619912345678")]
    [InlineData("+852 9123 4567", "+85291234567")]
    [InlineData("+1 (415) 555-0100", "+14155550100")]
    public void Normalises_to_E164(string input, string expected)
    {
        Assert.True(PhoneNumber.TryNormalize(input, out var e164));
        Assert.Equal(expected, e164);
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("12800138000")]      // 12x is not a mobile prefix
    [InlineData("1380013800")]       // 10 digits
    [InlineData("138001380000")]     // 12 digits
    [InlineData("+86 010 1234 5678")] // mainland landline
    [InlineData("1380013800a")]
    [InlineData("+1234567")]          // too short for international
    [InlineData("+0123456789")]
    [InlineData("phone")]
    public void Rejects_what_is_not_a_reachable_mobile_number(string input) =>
        Assert.False(PhoneNumber.TryNormalize(input, out _));
}

public class EmailAddressTests
{
    [Theory]
    [InlineData("  Li.Na@Example.COM ", "li.na@example.com")]
    [InlineData("wang+vip@shop.cn", "wang+vip@shop.cn")]
    public void Normalises_to_trimmed_lower_case(string input, string expected)
    {
        Assert.True(EmailAddress.TryNormalize(input, out var email));
        Assert.Equal(expected, email);
    }

    [Theory]
    [InlineData("li.na")]
    [InlineData("li@na")]
    [InlineData("@example.com")]
    [InlineData("a@b@example.com")]
    [InlineData("li na@example.com")]
    public void Rejects_malformed(string input) => Assert.False(EmailAddress.TryNormalize(input, out _));
}
