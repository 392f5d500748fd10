using Crm.ServiceDefaults.Security;

namespace Crm.UnitTests.Platform;

public sealed class PiiTests
{
    [Theory]
    [InlineData("+8613800138000", "+86138****8000")]
    [InlineData("13800138000", "138****8000")]
    [InlineData("+86 138 0013 8000", "+86138****8000")]
    public void Phones_are_masked(string phone, string masked) => Assert.Equal(masked, Pii.MaskPhone(phone));

    [Fact]
    public void Emails_are_masked() => Assert.Equal("l***@example.com", Pii.MaskEmail("lin.yue@example.com"));

    [Fact]
    public void Scrub_masks_phones_and_emails_in_text_but_not_ids_dates_or_amounts()
    {
        var text = "phone: got '138 0013 80001'; email: is not a valid email address: 'Lin.Yue@Example.com'. " +
                   "order 01a21731-e1ab-7d8b-9852-d30179b90055 paid 10000.50 at 2026-11-26 09:37:48";
        var scrubbed = Pii.Scrub(text);
        Assert.DoesNotContain("0013", scrubbed);
        Assert.DoesNotContain("Lin.Yue", scrubbed);
        Assert.Contains("L***@Example.com", scrubbed);
        Assert.Contains("01a21731-e1ab-7d8b-9852-d30179b90055", scrubbed);
        Assert.Contains("10000.50", scrubbed);
        Assert.Contains("2026-11-26 09:37:48", scrubbed);
        Assert.Equal("email: 'n***@'", Pii.Scrub("email: 'not-an-email.x@'"));
    }
}
