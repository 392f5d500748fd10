using Crm.Customer.Customers;
using Crm.Customer.V1;
using Crm.ServiceDefaults.Errors;
using Microsoft.Extensions.Time.Testing;

namespace Crm.UnitTests.Customer;

public class ProfileRulesTests
{
    private static readonly TimeProvider Clock = new FakeTimeProvider(new DateTimeOffset(2026, 11, 23, 8, 0, 0, TimeSpan.Zero));

    [Fact]
    public void Normalises_every_field_of_a_new_profile()
    {
        var v = new Validator();
        var input = new CustomerProfile
        {
            Name = "  李娜 ", Phone = "138 0013 8000", Email = " Li.Na@Example.com", Region = " 广东 ", City = "深圳",
            SourceChannel = "WeChat", Gender = Gender.Female, MarketingConsent = true,
            Birthday = new Google.Type.Date { Year = 1990, Month = 5, Day = 20 },
        };
        input.Tags.Add(" vip ");
        input.Tags.Add("vip");
        input.Tags.Add("gold");

        var profile = ProfileRules.ForCreate(input, v, Clock);

        Assert.True(v.IsValid);
        Assert.Equal("李娜", profile.Name);
        Assert.Equal("+8613800138000", profile.Phone);
        Assert.Equal("li.na@example.com", profile.Email);
        Assert.Equal("广东", profile.Region);
        Assert.Equal("wechat", profile.SourceChannel);
        Assert.Equal(new DateOnly(1990, 5, 20), profile.Birthday);
        Assert.Equal(["vip", "gold"], profile.Tags);
        Assert.Null(profile.Address);
    }

    [Fact]
    public void Reports_every_bad_field_under_its_request_path()
    {
        var v = new Validator();
        var input = new CustomerProfile
        {
            Name = "", Phone = "12345", Email = "not-an-email",
            Birthday = new Google.Type.Date { Year = 2027, Month = 1, Day = 1 },
        };
        input.Tags.Add("");

        ProfileRules.ForCreate(input, v, Clock);

        var ex = Assert.Throws<ValidationException>(v.ThrowIfInvalid);
        Assert.Equal(
            ["profile.birthday", "profile.email", "profile.name", "profile.phone", "profile.tags[0]"],
            ex.Violations.Select(x => x.Field).Order());
    }

    [Fact]
    public void A_missing_phone_is_required_not_malformed()
    {
        var v = new Validator();
        ProfileRules.ForCreate(new CustomerProfile { Name = "王伟" }, v, Clock);
        var ex = Assert.Throws<ValidationException>(v.ThrowIfInvalid);
        var violation = Assert.Single(ex.Violations);
        Assert.Equal(("profile.phone", "is required."), (violation.Field, violation.Description));
    }

    [Fact]
    public void February_30th_is_not_a_birthday()
    {
        var v = new Validator();
        ProfileRules.ForCreate(new CustomerProfile
        {
            Name = "王伟", Phone = "13900001111", Birthday = new Google.Type.Date { Year = 1990, Month = 2, Day = 30 },
        }, v, Clock);
        Assert.Equal("profile.birthday", Assert.Single(Assert.Throws<ValidationException>(v.ThrowIfInvalid).Violations).Field);
    }

    [Fact]
    public void Merge_changes_only_the_masked_fields_and_reports_them()
    {
        var v = new Validator();
        var current = ProfileRules.ForCreate(new CustomerProfile { Name = "王伟", Phone = "13900001111", City = "上海" }, v, Clock);
        var updated = ProfileRules.Merge(current, new CustomerProfile { Name = "ignored", City = "杭州" }, new HashSet<string> { "city" }, v, Clock);

        Assert.True(v.IsValid);
        Assert.Equal(("王伟", "杭州"), (updated.Name, updated.City));
        Assert.Equal(["city"], CustomerRepository.ChangedFields(current, updated));
    }
}
