using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using Google.Protobuf;
using System.Text.RegularExpressions;
using Microsoft.Playwright;
using Xunit;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace Crm.EndToEndTests;

/// <summary>
/// One AppHost run and one headless browser (Debian's chromium, driven by Playwright) shared by the dashboard tests.
/// Screenshots of each page go to <c>bin/&lt;Configuration&gt;/net10.0/screenshots/</c>.
/// </summary>
public sealed class DashboardFixture : IAsyncLifetime
{
    internal AppHostRun AppHost { get; private set; } = null!;
    public IPlaywright Playwright { get; private set; } = null!;
    public IBrowser Browser { get; private set; } = null!;
    public static string Screenshots { get; } = Path.Combine(AppContext.BaseDirectory, "screenshots");

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Screenshots);
        // The machine is shared (CI too): an assertion waits up to 20 s for the live page, not Playwright's 5 s.
        SetDefaultExpectTimeout(20_000);
        AppHost = await AppHostRun.StartAsync();
        Playwright = await Microsoft.Playwright.Playwright.CreateAsync();
        Browser = await Playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = "/usr/bin/chromium", // Debian's package (./crm installs it); Playwright's own download is never used
            Headless = true,
            Args = ["--no-sandbox"], // root in CI
        });
    }

    /// <summary>A browser page logged in through the link the AppHost printed.</summary>
    public async Task<IPage> LoggedInPageAsync()
    {
        var context = await Browser.NewContextAsync(new BrowserNewContextOptions { ViewportSize = new ViewportSize { Width = 1400, Height = 900 } });
        var page = await context.NewPageAsync();
        page.SetDefaultTimeout(30_000);
        var response = await page.GotoAsync(AppHost.DashboardLoginUrl);
        Assert.Equal(200, response!.Status);
        return page;
    }

    public static Task ShotAsync(IPage page, string name) =>
        page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Screenshots, name + ".png"), FullPage = true });

    public async Task DisposeAsync()
    {
        if (Browser is not null) await Browser.DisposeAsync();
        Playwright?.Dispose();
        if (AppHost is not null) await AppHost.DisposeAsync();
    }
}

[Collection(AppHostCollection.Name)]
public sealed class DashboardTests(DashboardFixture fixture, ITestOutputHelper output) : IClassFixture<DashboardFixture>
{
    private AppHostRun AppHost => fixture.AppHost;

    [Fact]
    public async Task Dashboard_pages_and_json_api_answer_401_without_the_login_token()
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        foreach (var path in new[] { "/", "/traces", "/metrics", "/api/resources", "/api/traces", "/api/resources/customer/console" })
            Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync(AppHost.Dashboard + path)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.PostAsync(AppHost.Dashboard + "/api/resources/customer/stop", null)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync(AppHost.Dashboard + "/login?t=not-the-token")).StatusCode);
        using var bearer = new HttpRequestMessage(HttpMethod.Get, AppHost.Dashboard + "/api/resources");
        bearer.Headers.Authorization = new("Bearer", AppHost.DashboardToken);
        Assert.Equal(HttpStatusCode.OK, (await http.SendAsync(bearer)).StatusCode);

        // A browser without the token sees the login form, answered 401; the printed link logs it in.
        var context = await fixture.Browser.NewContextAsync();
        var page = await context.NewPageAsync();
        Assert.Equal(401, (await page.GotoAsync(AppHost.Dashboard + "/"))!.Status);
        await Expect(page.Locator("form[action='/login'] input[name=t]")).ToBeVisibleAsync();
        await DashboardFixture.ShotAsync(page, "login");
        await page.FillAsync("input[name=t]", AppHost.DashboardToken);
        await page.ClickAsync("form[action='/login'] button");
        await Expect(page.Locator("#resources")).ToBeVisibleAsync();
        await context.CloseAsync();
    }

    [Fact]
    public async Task OTLP_over_HTTP_protobuf_reaches_the_traces_api()
    {
        var http = AppHost.Lines.Select(l => Regex.Match(l, @"OTLP: \S+ \(gRPC\), (http://\S+) \(HTTP/protobuf\)")).First(m => m.Success).Groups[1].Value;
        var traceId = RandomNumberGenerator.GetBytes(16);
        var now = (ulong)(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1_000_000);
        // ExportTraceServiceRequest { resource_spans { resource { attributes { service.name = otlp-http-probe } } scope_spans { spans { … } } } }
        var span = Message(w =>
        {
            w.WriteTag(1, WireFormat.WireType.LengthDelimited); w.WriteBytes(ByteString.CopyFrom(traceId));
            w.WriteTag(2, WireFormat.WireType.LengthDelimited); w.WriteBytes(ByteString.CopyFrom(RandomNumberGenerator.GetBytes(8)));
            w.WriteTag(5, WireFormat.WireType.LengthDelimited); w.WriteString("probe span");
            w.WriteTag(6, WireFormat.WireType.Varint); w.WriteEnum(2); // SERVER
            w.WriteTag(7, WireFormat.WireType.Fixed64); w.WriteFixed64(now - 5_000_000);
            w.WriteTag(8, WireFormat.WireType.Fixed64); w.WriteFixed64(now);
        });
        var anyValue = Message(w => { w.WriteTag(1, WireFormat.WireType.LengthDelimited); w.WriteString("otlp-http-probe"); });
        var keyValue = Message(w => { w.WriteTag(1, WireFormat.WireType.LengthDelimited); w.WriteString("service.name"); Embed(w, 2, anyValue); });
        var resource = Message(w => Embed(w, 1, keyValue));
        var scopeSpans = Message(w => Embed(w, 2, span));
        var resourceSpans = Message(w => { Embed(w, 1, resource); Embed(w, 2, scopeSpans); });
        var request = Message(w => Embed(w, 1, resourceSpans));

        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        using var content = new ByteArrayContent(request);
        content.Headers.ContentType = new("application/x-protobuf");
        using var response = await client.PostAsync(http + "/v1/traces", content);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/x-protobuf", response.Content.Headers.ContentType?.MediaType);

        var spans = await AppHost.GetJsonAsync("/api/traces/" + Convert.ToHexStringLower(traceId));
        var stored = Assert.Single(spans.EnumerateArray());
        Assert.Equal("probe span", stored.GetProperty("name").GetString());
        Assert.Equal("otlp-http-probe", stored.GetProperty("resource").GetString());
        Assert.Equal("Server", stored.GetProperty("kind").GetString());
        Assert.InRange(stored.GetProperty("durationMs").GetDouble(), 4.9, 5.1);
    }

    private static byte[] Message(Action<CodedOutputStream> write)
    {
        using var buffer = new MemoryStream();
        using (var output = new CodedOutputStream(buffer, leaveOpen: true)) write(output);
        return buffer.ToArray();
    }

    private static void Embed(CodedOutputStream output, int field, byte[] message)
    {
        output.WriteTag(field, WireFormat.WireType.LengthDelimited);
        output.WriteBytes(ByteString.CopyFrom(message));
    }

    [Fact]
    public async Task Resources_page_lists_every_resource_and_a_SIGKILLed_service_changes_state_and_comes_back_without_a_reload()
    {
        var page = await fixture.LoggedInPageAsync();
        var resources = await AppHost.ResourcesAsync();
        foreach (var name in resources.Select(r => r.GetProperty("name").GetString()!))
            await Expect(page.Locator($"#resources tr[data-resource='{name}']")).ToBeVisibleAsync();
        Assert.Contains(resources, r => r.GetProperty("name").GetString() == "loyalty");
        await Expect(page.Locator("#resources tr[data-resource='loyalty'] td.state")).ToHaveTextAsync("Running");
        await DashboardFixture.ShotAsync(page, "resources");

        // Every state the open page shows for loyalty, sampled every 50 ms; a marker that a reload would wipe.
        await page.EvaluateAsync("""
            () => { window.__noReload = true; window.__states = [];
                    setInterval(() => { const c = document.querySelector("#resources tr[data-resource='loyalty'] td.state");
                                        if (c && window.__states[window.__states.length - 1] !== c.textContent) window.__states.push(c.textContent); }, 50); }
            """);
        var loyalty = await AppHost.ResourceAsync("loyalty");
        var pid = loyalty.GetProperty("pid").GetInt32();
        var restarts = loyalty.GetProperty("restarts").GetInt32();
        var stopwatch = Stopwatch.StartNew();
        TestSupport.Signal(pid, 9);

        var row = page.Locator("#resources tr[data-resource='loyalty']");
        await Expect(row.Locator("td").Nth(5)).ToHaveTextAsync((restarts + 1).ToString(), new() { Timeout = 60_000 });
        await Expect(row.Locator("td.state")).ToHaveTextAsync("Running", new() { Timeout = 60_000 });
        await Expect(row.Locator("td").Nth(3)).ToHaveTextAsync(new Regex("^Healthy"), new() { Timeout = 60_000 });
        var states = await page.EvaluateAsync<string[]>("() => window.__states");
        output.WriteLine($"states seen on the open page: {string.Join(" → ", states)}; back in {stopwatch.Elapsed.TotalSeconds:0.0} s");
        Assert.True(await page.EvaluateAsync<bool>("() => window.__noReload === true"), "the page was reloaded");
        Assert.Contains(states, s => s != "Running");
        Assert.Equal("Running", states[^1]);
        Assert.NotEqual(pid, await row.Locator("td").Nth(7).TextContentAsync() is { } p ? int.Parse(p) : 0);
        await DashboardFixture.ShotAsync(page, "resources-after-kill");

        // The stop and start actions: the customer service stops (and stays stopped), then runs again.
        var customer = page.Locator("#resources tr[data-resource='customer']");
        await customer.Locator("button[data-action='stop']").ClickAsync();
        await Expect(customer.Locator("td.state")).ToHaveTextAsync("Stopped", new() { Timeout = 30_000 });
        Assert.Equal("Stopped", (await AppHost.ResourceAsync("customer")).GetProperty("state").GetString());
        await DashboardFixture.ShotAsync(page, "resources-customer-stopped");
        await customer.Locator("button[data-action='start']").ClickAsync();
        await Expect(customer.Locator("td.state")).ToHaveTextAsync("Running", new() { Timeout = 60_000 });
        await Expect(customer.Locator("td").Nth(3)).ToHaveTextAsync(new Regex("^Healthy"), new() { Timeout = 60_000 });

        // One resource: its health checks and its environment, secrets masked.
        await page.GotoAsync(AppHost.Dashboard + "/resources/loyalty");
        await Expect(page.Locator("table.env")).ToContainTextAsync("Auth__ServiceToken");
        var env = await page.Locator("table.env").InnerTextAsync();
        Assert.Contains("OTEL_EXPORTER_OTLP_ENDPOINT", env);
        Assert.Contains("OTEL_EXPORTER_OTLP_PROTOCOL\tgrpc", env);
        Assert.DoesNotMatch(new Regex(@"Password=(?!••••••)", RegexOptions.IgnoreCase), env);
        Assert.Matches(new Regex(@"Auth__ServiceToken\s+••••••"), env);
        await DashboardFixture.ShotAsync(page, "resource-loyalty");
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task An_order_is_one_trace_from_the_customer_RPC_through_the_relay_into_the_loyalty_consumer_with_its_logs()
    {
        using var suite = await Suite.ConnectAsync(AppHost);
        var customerId = await suite.CreateCustomerAsync("Trace Test");
        var (order, _) = await suite.RecordOrderAsync(customerId, "ERP-" + Guid.NewGuid().ToString("N")[..12], 1_234m, TimeSpan.FromSeconds(30));
        var account = await suite.WaitForAccountAsync(customerId, a => a.Balance != 0, TimeSpan.FromSeconds(60));
        Assert.Equal(1_234, account?.Balance);

        var page = await fixture.LoggedInPageAsync();
        await page.GotoAsync(AppHost.Dashboard + "/traces?resource=loyalty");
        // The list updates itself: the order's trace appears once the services have exported it (every second).
        var trace = page.Locator("#traces tr.trace", new() { HasText = "RecordOrder" }).Filter(new() { HasText = "loyalty" }).First;
        await Expect(trace).ToBeVisibleAsync(new() { Timeout = 30_000 });
        await DashboardFixture.ShotAsync(page, "traces");
        await trace.Locator("a").ClickAsync();

        var waterfall = page.Locator("#waterfall");
        await Expect(waterfall.Locator(".span[data-resource='customer'][data-kind='Server']", new() { HasText = "RecordOrder" })).ToHaveCountAsync(1);
        await Expect(waterfall.Locator(".span[data-resource='customer']", new() { HasText = "outbox publish" }).First).ToBeVisibleAsync();
        // Spans still arrive for a moment (the consumer's exports): the page keeps updating itself.
        await Expect(waterfall.Locator(".span[data-resource='loyalty'][data-kind='Consumer']").First).ToBeVisibleAsync(new() { Timeout = 20_000 });
        await Expect(waterfall.Locator(".span[data-resource='loyalty'][data-kind='Client']").First).ToBeVisibleAsync();
        await DashboardFixture.ShotAsync(page, "trace-waterfall");

        // Its structured logs are one click away, each linked back to this trace.
        var traceUrl = page.Url;
        await page.ClickAsync("#trace-logs");
        await Expect(page.Locator("#logs tr.log").First).ToBeVisibleAsync(new() { Timeout = 20_000 });
        var traceId = traceUrl[(traceUrl.LastIndexOf('/') + 1)..];
        await Expect(page.Locator($"#logs tr.log a[href='/traces/{traceId}']").First).ToBeVisibleAsync();
        await DashboardFixture.ShotAsync(page, "trace-logs");

        // The business pulse counts it and measures order → points from the same trace.
        await page.GotoAsync(AppHost.Dashboard + "/pulse");
        await Expect(page.Locator("#lag")).ToContainTextAsync("p99", new() { Timeout = 20_000 });
        await DashboardFixture.ShotAsync(page, "pulse");
        output.WriteLine($"order {order.Id}: {await page.Locator("#lag").InnerTextAsync()}");
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task Metrics_page_shows_a_nonzero_RecordOrder_rate_after_a_burst_and_the_console_tails_live()
    {
        using var suite = await Suite.ConnectAsync(AppHost);
        var customerId = await suite.CreateCustomerAsync("Burst Test");
        using var stop = new CancellationTokenSource();
        // A burst that goes on until the page has shown it: the rate is over the last 10 s.
        var burst = Task.Run(async () =>
        {
            var calls = 0;
            while (!stop.IsCancellationRequested)
            {
                await Task.WhenAll(Enumerable.Range(0, 5).Select(_ =>
                    suite.RecordOrderAsync(customerId, "ERP-" + Guid.NewGuid().ToString("N")[..12], 100m, TimeSpan.FromSeconds(30))));
                calls += 5;
            }
            return calls;
        });
        var stopwatch = Stopwatch.StartNew();
        try
        {
            var page = await fixture.LoggedInPageAsync();
            await page.GotoAsync(AppHost.Dashboard + "/metrics?resource=customer");
            output.WriteLine($"metrics page open after {stopwatch.Elapsed.TotalSeconds:0.0} s");
            var row = page.Locator("#methods tr.method[data-method$='/RecordOrder']");
            await Expect(row.Locator("td.rate")).Not.ToHaveTextAsync(new Regex(@"^0\.0$|^$"), new() { Timeout = 30_000 });
            var rate = double.Parse((await row.Locator("td.rate").TextContentAsync())!, System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(rate > 0, $"RecordOrder rate {rate}");
            await DashboardFixture.ShotAsync(page, "metrics");
            output.WriteLine($"RecordOrder after {stopwatch.Elapsed.TotalSeconds:0.0} s: {await row.InnerTextAsync()}");
            await page.Context.CloseAsync();
        }
        finally
        {
            await stop.CancelAsync();
            output.WriteLine($"burst: {await burst} calls, {stopwatch.Elapsed.TotalSeconds:0.0} s");
        }

        // Console: the live tail of the customer service (server-sent events), with a filter.
        var console = await fixture.LoggedInPageAsync();
        await console.GotoAsync(AppHost.Dashboard + "/console?resource=customer");
        output.WriteLine($"console page open after {stopwatch.Elapsed.TotalSeconds:0.0} s");
        await Expect(console.Locator("#console")).Not.ToBeEmptyAsync();
        await Expect(console.Locator("#status")).ToHaveTextAsync("live");
        output.WriteLine($"console live after {stopwatch.Elapsed.TotalSeconds:0.0} s");
        await DashboardFixture.ShotAsync(console, "console");
        output.WriteLine($"console screenshot after {stopwatch.Elapsed.TotalSeconds:0.0} s");
        var logs = await console.Context.NewPageAsync();
        await logs.GotoAsync(AppHost.Dashboard + "/logs?resource=customer");
        output.WriteLine($"logs page open after {stopwatch.Elapsed.TotalSeconds:0.0} s");
        await Expect(logs.Locator("#logs tr.log").First).ToBeVisibleAsync();
        await DashboardFixture.ShotAsync(logs, "structured-logs");
        output.WriteLine($"console and logs pages checked after {stopwatch.Elapsed.TotalSeconds:0.0} s");
        await logs.Context.CloseAsync();
        output.WriteLine($"closed after {stopwatch.Elapsed.TotalSeconds:0.0} s");
    }
}
