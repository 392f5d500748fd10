using Crm.Common.V1;
using Crm.ServiceDefaults.Errors;
using Crm.ServiceDefaults.Paging;

namespace Crm.UnitTests.Platform;

public class MoneyTests
{
    [Theory]
    [InlineData("10000.50", 10000.50)]
    [InlineData("0.01", 0.01)]
    [InlineData(" 199 ", 199)]
    public void Parses_exact_yuan(string text, decimal expected)
    {
        Assert.True(new Money { Amount = text }.TryToDecimal(out var value));
        Assert.Equal(expected, value);
    }

    [Fact]
    public void Prints_two_decimals() => Assert.Equal("10000.50", Money.FromDecimal(10000.5m).Amount);
}

public class PageTokenTests
{
    [Fact]
    public void Round_trips_the_key_for_the_same_filters()
    {
        var token = PageToken.Encode("42", "tag=vip");
        var v = new Validator();
        Assert.Equal("42", PageToken.Decode(token, "tag=vip", v));
        Assert.True(v.IsValid);
    }

    [Fact]
    public void Refuses_a_token_from_another_query()
    {
        var v = new Validator();
        PageToken.Decode(PageToken.Encode("42", "tag=vip"), "tag=gold", v);
        Assert.Equal("page_token", Assert.Single(Assert.Throws<ValidationException>(v.ThrowIfInvalid).Violations).Field);
    }

    [Theory]
    [InlineData(0, 50)]
    [InlineData(1, 1)]
    [InlineData(200, 200)]
    public void Page_size_defaults_to_50_and_allows_up_to_200(int requested, int expected) =>
        Assert.Equal(expected, PageToken.PageSize(requested, new Validator()));

    [Fact]
    public void Page_size_over_200_is_invalid()
    {
        var v = new Validator();
        PageToken.PageSize(201, v);
        Assert.False(v.IsValid);
    }
}
