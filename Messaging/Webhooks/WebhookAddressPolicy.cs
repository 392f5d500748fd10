using System.Net;
using System.Net.Http;
using System.Net.Sockets;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using IPNetwork = System.Net.IPNetwork;

namespace Crm.Messaging.Webhooks;

/// <summary>
/// Where webhooks may go (against SSRF: a partner's URL must not reach the service's own network). A URL is checked at
/// registration (scheme; a literal address) and again at every delivery, where the connection is made by
/// <see cref="ConnectAsync"/>: it resolves the name itself, drops every address that is not public, and connects to one
/// of those it resolved, so a name that changes its answer between a check and the connect (DNS rebinding) gains nothing.
/// <see cref="WebhookOptions.AllowedPrivateNetworks"/> lets chosen networks through (a local receiver in development
/// and tests); production allows none.
/// </summary>
public sealed class WebhookAddressPolicy
{
    private readonly IPNetwork[] _allowed;

    public WebhookAddressPolicy(IOptions<WebhookOptions> options, IHostEnvironment environment)
    {
        _allowed = options.Value.AllowedPrivateNetworks.Select(n => IPNetwork.Parse(n.Trim())).ToArray();
        RequireHttps = options.Value.RequireHttps ?? !environment.IsDevelopment();
    }

    public WebhookAddressPolicy(bool requireHttps, params string[] allowedNetworks)
    {
        _allowed = allowedNetworks.Select(IPNetwork.Parse).ToArray();
        RequireHttps = requireHttps;
    }

    public bool RequireHttps { get; }

    private static readonly (IPNetwork Network, string What)[] NotPublic =
    [
        (IPNetwork.Parse("0.0.0.0/8"), "an unspecified address"),
        (IPNetwork.Parse("127.0.0.0/8"), "a loopback address"),
        (IPNetwork.Parse("10.0.0.0/8"), "a private address"),
        (IPNetwork.Parse("172.16.0.0/12"), "a private address"),
        (IPNetwork.Parse("192.168.0.0/16"), "a private address"),
        (IPNetwork.Parse("169.254.0.0/16"), "a link-local address (cloud metadata among them)"),
        (IPNetwork.Parse("100.64.0.0/10"), "a shared (CGNAT) address"),
        (IPNetwork.Parse("192.0.0.0/24"), "a special-purpose address"),
        (IPNetwork.Parse("198.18.0.0/15"), "a special-purpose address"),
        (IPNetwork.Parse("224.0.0.0/4"), "a multicast address"),
        (IPNetwork.Parse("240.0.0.0/4"), "a reserved or broadcast address"),
        (IPNetwork.Parse("::/128"), "an unspecified address"),
        (IPNetwork.Parse("::1/128"), "a loopback address"),
        (IPNetwork.Parse("::/96"), "a special-purpose address"), // IPv4-compatible, deprecated
        (IPNetwork.Parse("100::/64"), "a special-purpose address"), // discard
        (IPNetwork.Parse("fc00::/7"), "a private address"),
        (IPNetwork.Parse("fec0::/10"), "a private address"), // site-local, deprecated
        (IPNetwork.Parse("fe80::/10"), "a link-local address"),
        (IPNetwork.Parse("ff00::/8"), "a multicast address"),
    ];

    /// <summary>Why a webhook may not go to <paramref name="address"/> whatever the allow-list says; null when it is public.</summary>
    public static string? Classify(IPAddress address)
    {
        address = Embedded(address);
        foreach (var (network, what) in NotPublic)
            if (network.Contains(address)) return what;
        return null;
    }

    /// <summary>Why a webhook may not go to <paramref name="address"/> here; null when it may.</summary>
    public string? Refusal(IPAddress address)
    {
        var plain = Embedded(address);
        return _allowed.Any(n => n.Contains(plain) || n.Contains(address)) ? null : Classify(address);
    }

    /// <summary>What is wrong with an absolute http(s) URL as a webhook target, before any name is resolved; null when nothing.</summary>
    public string? UrlProblem(Uri uri)
    {
        if (RequireHttps && uri.Scheme != Uri.UriSchemeHttps) return "must be an https:// URL.";
        if (uri.HostNameType is UriHostNameType.IPv4 or UriHostNameType.IPv6 && IPAddress.TryParse(uri.Host.Trim('[', ']'), out var ip)
            && Refusal(ip) is { } why)
            return $"must not point at {why} ({ip}); webhooks go to public addresses only.";
        return null;
    }

    /// <summary>The webhook client's connect step (SocketsHttpHandler.ConnectCallback): resolve, check, connect to what passed.</summary>
    public async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken ct)
    {
        var host = context.DnsEndPoint.Host.Trim('[', ']');
        var resolved = IPAddress.TryParse(host, out var literal) ? [literal] : await Dns.GetHostAddressesAsync(host, ct);
        var allowed = resolved.Where(a => Refusal(a) is null).ToArray();
        if (allowed.Length == 0)
            throw new HttpRequestException(resolved.Length == 0
                ? $"refused: {host} resolves to no address"
                : $"refused: {host} resolves to {resolved[0]}, {Refusal(resolved[0])}; webhooks go to public addresses only "
                  + "(Messaging:Webhooks:AllowedPrivateNetworks)");
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(allowed, context.DnsEndPoint.Port, ct);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>The IPv4 address inside an IPv4-mapped (::ffff:a.b.c.d), NAT64 (64:ff9b::/96) or 6to4 (2002::/16) address.</summary>
    private static IPAddress Embedded(IPAddress address)
    {
        if (address.AddressFamily != AddressFamily.InterNetworkV6) return address;
        if (address.IsIPv4MappedToIPv6) return address.MapToIPv4();
        var bytes = address.GetAddressBytes();
        if (Nat64.Contains(address)) return new IPAddress(bytes.AsSpan(12, 4));
        if (SixToFour.Contains(address)) return new IPAddress(bytes.AsSpan(2, 4));
        return address;
    }

    private static readonly IPNetwork Nat64 = IPNetwork.Parse("64:ff9b::/96");
    private static readonly IPNetwork SixToFour = IPNetwork.Parse("2002::/16");
}
