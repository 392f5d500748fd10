using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Crm.AppHost.Hosting;

/// <summary>
/// The ops dashboard: plain HTML pages that refresh themselves, plus JSON for scripts and tests.
/// <list type="bullet">
/// <item><c>GET /</c> every resource: type, state, health, endpoints, restarts, uptime;</item>
/// <item><c>GET /resources/{name}</c> one resource with its last 200 log lines;</item>
/// <item><c>GET /api/resources</c> <c>[{ name, type, state, health, healthDescription, endpoints: { http: url, … }, restarts, pid, startedAt, uptimeSeconds }]</c>;</item>
/// <item><c>GET /api/resources/{name}/logs</c> the last log lines as text.</item>
/// </list>
/// </summary>
internal sealed class Dashboard(IReadOnlyList<Resource> resources, ILogger logger) : IAsyncDisposable
{
    private WebApplication? _app;

    public string Url { get; private set; } = "";

    public async Task StartAsync(string url)
    {
        try
        {
            _app = Build(url);
            await _app.StartAsync();
        }
        catch (IOException e) when (!url.EndsWith(":0", StringComparison.Ordinal))
        {
            logger.LogWarning("The dashboard could not listen on {Url} ({Reason}); using a free port", url, e.Message);
            if (_app is not null) await _app.DisposeAsync();
            _app = Build(new UriBuilder(url) { Port = 0 }.Uri.ToString().TrimEnd('/'));
            await _app.StartAsync();
        }
        Url = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is null) return;
        await _app.StopAsync(TimeSpan.FromSeconds(2));
        await _app.DisposeAsync();
    }

    private WebApplication Build(string url)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls(url);
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton<IHostLifetime, NoConsoleLifetime>(); // the AppHost handles Ctrl+C itself
        var app = builder.Build();

        app.MapGet("/", () => Html("Crm suite", Overview()));
        app.MapGet("/resources/{name}", (string name) =>
            Find(name) is { } r ? Html($"{r.Name} — Crm suite", Details(r)) : Results.NotFound());
        app.MapGet("/api/resources", () => Results.Json(resources.Select(ToJson)));
        app.MapGet("/api/resources/{name}/logs", (string name) =>
            Find(name) is { } r ? Results.Text(string.Join('\n', r.Logs.Snapshot()) + "\n") : Results.NotFound());
        return app;
    }

    private Resource? Find(string name) => resources.FirstOrDefault(r => string.Equals(r.Name, name, StringComparison.OrdinalIgnoreCase));

    private static object ToJson(Resource r) => new
    {
        name = r.Name,
        type = r.Type,
        state = r.State.ToString(),
        health = r.Health,
        healthDescription = r.HealthDescription,
        endpoints = ConsoleTable.Snapshot(r).ToDictionary(e => e.Key, e => e.Value),
        restarts = r.Restarts,
        pid = r.ProcessId,
        startedAt = r.StartedAt,
        uptimeSeconds = Uptime(r)?.TotalSeconds,
    };

    private static TimeSpan? Uptime(Resource r) =>
        r.StartedAt is { } started && r.State == ResourceState.Running ? DateTimeOffset.UtcNow - started : null;

    private string Overview()
    {
        var html = new StringBuilder("<table><tr><th>Resource</th><th>Type</th><th>State</th><th>Health</th><th>Endpoints</th><th>Restarts</th><th>Uptime</th><th>Pid</th></tr>");
        foreach (var r in resources)
        {
            html.Append($"<tr><td><a href=\"/resources/{E(r.Name)}\">{E(r.Name)}</a></td><td>{E(r.Type)}</td>")
                .Append($"<td class=\"{E(r.State.ToString())}\">{E(r.State.ToString())}</td><td class=\"{E(r.Health ?? "")}\">{E(r.Health ?? "")}{Why(r)}</td><td>")
                .AppendJoin("<br>", ConsoleTable.Snapshot(r).Select(e => e.Value.StartsWith("http", StringComparison.Ordinal)
                    ? $"{E(e.Key)} <a href=\"{E(e.Value)}\">{E(e.Value)}</a>" : $"{E(e.Key)} {E(e.Value)}"))
                .Append($"</td><td>{r.Restarts}</td><td>{FormatUptime(Uptime(r))}</td><td>{r.ProcessId}</td></tr>");
        }
        return html.Append("</table><p><a href=\"/api/resources\">/api/resources</a> (JSON)</p>").ToString();
    }

    private static string Details(Resource r)
    {
        var lines = r.Logs.Snapshot();
        return $"<p><a href=\"/\">&larr; all resources</a></p><p>{E(r.Type)} &middot; {E(r.State.ToString())} {E(r.Health ?? "")}{Why(r)} &middot; " +
               $"restarts {r.Restarts} &middot; uptime {FormatUptime(Uptime(r))} &middot; pid {r.ProcessId}</p>" +
               $"<h2>Last {lines.Count} log lines</h2><pre>{E(string.Join('\n', lines))}</pre>";
    }

    /// <summary>The reason a resource is not healthy, under its health word.</summary>
    private static string Why(Resource r) => r.HealthDescription is { Length: > 0 } d ? $"<br><small>{E(d)}</small>" : "";

    private static string FormatUptime(TimeSpan? uptime) => uptime switch
    {
        null => "",
        { TotalHours: >= 1 } u => $"{(int)u.TotalHours}h {u.Minutes}m",
        { TotalMinutes: >= 1 } u => $"{u.Minutes}m {u.Seconds}s",
        { } u => $"{u.Seconds}s",
    };

    private static IResult Html(string title, string body) => Results.Content($$"""
        <!doctype html>
        <html><head><meta charset="utf-8"><meta http-equiv="refresh" content="3"><title>{{E(title)}}</title>
        <style>
          body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
          table { border-collapse: collapse; } th, td { padding: .3em .8em; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
          .Running, .Healthy { color: #17803d; } .Failed, .Unhealthy { color: #b42318; } .Restarting, .Starting, .Waiting, .Degraded { color: #b54708; }
          pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 12px; }
        </style></head>
        <body><h1>{{E(title)}}</h1>{{body}}</body></html>
        """, "text/html; charset=utf-8");

    private static string E(string text) => WebUtility.HtmlEncode(text);

    private sealed class NoConsoleLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
