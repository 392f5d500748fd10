using System.Net;
using Crm.Messaging.Webhooks;

namespace Crm.UnitTests.Platform;

/// <summary>Where a webhook may go: public addresses only, unless a network is allowed by configuration.</summary>
public sealed class WebhookAddressPolicyTests
{
    [Theory]
    [InlineData("127.0.0.1", "a loopback address")]
    [InlineData("127.10.20.30", "a loopback address")]
    [InlineData("10.0.0.1", "a private address")]
    [InlineData("172.16.0.1", "a private address")]
    [InlineData("172.31.255.254", "a private address")]
    [InlineData("192.168.1.20", "a private address")]
    [InlineData("169.254.169.254", "a link-local address (cloud metadata among them)")]
    [InlineData("100.64.0.1", "a shared (CGNAT) address")]
    [InlineData("100.127.255.254", "a shared (CGNAT) address")]
    [InlineData("0.0.0.0", "an unspecified address")]
    [InlineData("224.0.0.251", "a multicast address")]
    [InlineData("255.255.255.255", "a reserved or broadcast address")]
    [InlineData("::1", "a loopback address")]
    [InlineData("::", "an unspecified address")]
    [InlineData("fd12:3456:789a::1", "a private address")]
    [InlineData("fc00::1", "a private address")]
    [InlineData("fe80::1", "a link-local address")]
    [InlineData("ff02::1", "a multicast address")]
    [InlineData("::ffff:127.0.0.1", "a loopback address")]
    [InlineData("::ffff:169.254.169.254", "a link-local address (cloud metadata among them)")]
    [InlineData("::ffff:10.1.2.3", "a private address")]
    [InlineData("64:ff9b::a9fe:a9fe", "a link-local address (cloud metadata among them)")] // NAT64 of 169.254.169.254
    [InlineData("2002:7f00:1::1", "a loopback address")] // 6to4 of 127.0.0.1
    public void Addresses_inside_the_service_network_are_refused_with_what_they_are(string address, string what) =>
        Assert.Equal(what, WebhookAddressPolicy.Classify(IPAddress.Parse(address)));

    [Theory]
    [InlineData("93.184.215.14")]
    [InlineData("8.8.8.8")]
    [InlineData("172.15.255.255")] // just below 172.16/12
    [InlineData("172.32.0.1")] // just above it
    [InlineData("100.63.255.255")] // just below 100.64/10
    [InlineData("100.128.0.1")] // just above it
    [InlineData("169.253.255.255")]
    [InlineData("2606:2800:21f:cb07:6820:80da:af6b:8b2c")]
    [InlineData("::ffff:93.184.215.14")]
    public void Public_addresses_pass(string address) => Assert.Null(WebhookAddressPolicy.Classify(IPAddress.Parse(address)));

    [Fact]
    public void An_allowed_network_lets_only_its_own_addresses_through()
    {
        var policy = new WebhookAddressPolicy(false, "127.0.0.0/8", "::1/128");
        Assert.Null(policy.Refusal(IPAddress.Parse("127.0.0.1")));
        Assert.Null(policy.Refusal(IPAddress.Parse("::ffff:127.0.0.1")));
        Assert.Null(policy.Refusal(IPAddress.IPv6Loopback));
        Assert.Equal("a private address", policy.Refusal(IPAddress.Parse("10.0.0.1")));
        Assert.Equal("a link-local address (cloud metadata among them)", policy.Refusal(IPAddress.Parse("169.254.169.254")));
        Assert.Equal("a loopback address", new WebhookAddressPolicy(false).Refusal(IPAddress.Parse("127.0.0.1")));
    }

    [Theory]
    [InlineData("http://169.254.169.254/latest/meta-data/", "must not point at a link-local address (cloud metadata among them) (169.254.169.254); webhooks go to public addresses only.")]
    [InlineData("http://10.0.0.1/", "must not point at a private address (10.0.0.1); webhooks go to public addresses only.")]
    [InlineData("http://[::1]:8080/hooks", "must not point at a loopback address (::1); webhooks go to public addresses only.")]
    [InlineData("http://[::ffff:192.168.0.1]/hooks", "must not point at a private address (::ffff:192.168.0.1); webhooks go to public addresses only.")]
    [InlineData("http://2130706433/hooks", "must not point at a loopback address (127.0.0.1); webhooks go to public addresses only.")] // 127.0.0.1 as one number
    [InlineData("http://erp.example/hooks", null)] // a name: checked where it resolves to, at each delivery
    [InlineData("http://93.184.215.14/hooks", null)]
    public void A_url_with_a_literal_address_is_checked_at_registration(string url, string? problem) =>
        Assert.Equal(problem, new WebhookAddressPolicy(false).UrlProblem(new Uri(url)));

    [Fact]
    public void Https_is_required_where_the_policy_says_so()
    {
        var strict = new WebhookAddressPolicy(true);
        Assert.Equal("must be an https:// URL.", strict.UrlProblem(new Uri("http://erp.example/hooks")));
        Assert.Null(strict.UrlProblem(new Uri("https://erp.example/hooks")));
    }

    [Fact]
    public void A_setting_that_is_not_a_network_is_named()
    {
        var options = new WebhookOptions { AllowedPrivateNetworks = ["127.0.0.0/8", "localhost", "10.0.0.0/33"] };
        Assert.Equal("Messaging:Webhooks:AllowedPrivateNetworks: 'localhost' is not a network in CIDR notation (e.g. 127.0.0.0/8, ::1/128).",
            options.NetworkProblem());
        Assert.Null(new WebhookOptions { AllowedPrivateNetworks = ["127.0.0.0/8", "::1/128"] }.NetworkProblem());
    }
}
