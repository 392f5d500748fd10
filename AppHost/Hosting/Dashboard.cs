using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Crm.AppHost.Otlp;
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
/// The ops dashboard: server-rendered pages that update themselves (a few lines of script fetch the page's
/// main part again every two seconds; the console is a server-sent-events tail), plus JSON for scripts and tests.
/// Every page and API call needs the login token the AppHost prints (<c>/login?t=…</c> sets a cookie; scripts
/// send <c>Authorization: Bearer …</c>); without it the answer is 401.
/// <list type="bullet">
/// <item><c>/</c> resources; <c>/resources/{name}</c> one resource: health checks, environment (secrets masked), actions;</item>
/// <item><c>/console?resource=</c> live console tail; <c>/logs</c> structured logs; <c>/traces</c>, <c>/traces/{id}</c>;
/// <c>/metrics</c>; <c>/pulse</c> business pulse;</item>
/// <item><c>GET /api/resources</c> <c>[{ name, type, state, health, healthDescription, healthChecks, endpoints: { http: url, … }, restarts, pid, startedAt, uptimeSeconds }]</c>;</item>
/// <item><c>GET /api/resources/{name}/logs</c> (text), <c>/api/resources/{name}/console</c> (SSE), <c>POST /api/resources/{name}/stop|start|restart</c>;</item>
/// <item><c>GET /api/traces</c>, <c>/api/traces/{id}</c>, <c>/api/logs</c>, <c>/api/metrics/methods</c>, <c>/api/telemetry</c>.</item>
/// </list>
/// </summary>
internal sealed class Dashboard(
    IReadOnlyList<Resource> resources, ILogger logger, TelemetryStore telemetry,
    IReadOnlyList<ProjectSupervisor> supervisors, AppHostOptions options, string token) : IAsyncDisposable
{
    public const string CookieName = "crm-dashboard";
    private WebApplication? _app;

    public string Url { get; private set; } = "";

    /// <summary>The URL to open: it logs the browser in (as Aspire's <c>/login?t=…</c>).</summary>
    public string LoginUrl => $"{Url}/login?t={token}";

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

        app.Use(async (context, next) =>
        {
            if (context.Request.Path == "/login" || Authorized(context.Request)) { await next(context); return; }
            context.Response.StatusCode = StatusCodes.Status401Unauthorized;
            if (context.Request.Path.StartsWithSegments("/api"))
                await context.Response.WriteAsJsonAsync(new { error = "The dashboard needs its login token: open the link the AppHost printed, or send Authorization: Bearer <token>." });
            else
                await Html("Log in", LoginForm(false), 401).ExecuteAsync(context);
        });

        app.MapGet("/login", (HttpContext context, string? t) =>
        {
            if (t is null || !Same(t, token)) return t is null ? Html("Log in", LoginForm(false)) : Html("Log in", LoginForm(true), 401);
            context.Response.Cookies.Append(CookieName, token, new CookieOptions { HttpOnly = true, SameSite = SameSiteMode.Strict, Path = "/" });
            return Results.Redirect("/");
        });

        app.MapGet("/", (bool? partial) => Page("Resources", "/", ResourcesView(), partial));
        app.MapGet("/resources/{name}", (string name, bool? partial) =>
            Find(name) is { } r ? Page(r.Name, "/", ResourceView(r), partial) : Results.NotFound());
        app.MapGet("/console", (string? resource) => Page("Console", "/console", ConsoleView(resource), null, live: false));
        app.MapGet("/logs", (string? resource, string? level, string? q, string? trace, bool? partial) =>
            Page("Structured logs", "/logs", LogsView(resource, level, q, trace), partial));
        app.MapGet("/traces", (string? resource, string? status, bool? all, bool? partial) => Page("Traces", "/traces", TracesView(resource, status, all == true), partial));
        app.MapGet("/traces/{id}", (string id, bool? partial) => Page("Trace " + id[..Math.Min(8, id.Length)], "/traces", TraceView(id), partial));
        app.MapGet("/metrics", (string? resource, string? q, bool? partial) => Page("Metrics", "/metrics", MetricsView(resource, q), partial));
        app.MapGet("/pulse", (bool? partial) => Page("Business pulse", "/pulse", PulseView(), partial));

        app.MapGet("/api/resources", () => Results.Json(resources.Select(ToJson)));
        app.MapGet("/api/resources/{name}/logs", (string name) =>
            Find(name) is { } r ? Results.Text(string.Join('\n', r.Logs.Snapshot()) + "\n") : Results.NotFound());
        app.MapGet("/api/resources/{name}/console", ConsoleStreamAsync);
        app.MapPost("/api/resources/{name}/{action}", async (string name, string action) =>
        {
            if (supervisors.FirstOrDefault(s => string.Equals(s.Project.Name, name, StringComparison.OrdinalIgnoreCase)) is not { } supervisor)
                return Results.NotFound(new { error = $"{name} is not a project (only projects can be stopped and started)" });
            Task work = action switch
            {
                "stop" => supervisor.StopFromDashboardAsync(),
                "start" => supervisor.StartFromDashboardAsync(),
                "restart" => supervisor.RestartFromDashboardAsync(),
                _ => Task.FromException(new ArgumentException(action)),
            };
            if (work.IsFaulted) return Results.BadRequest(new { error = "actions: stop, start, restart" });
            await work;
            return Results.Json(ToJson(supervisor.Project));
        });
        app.MapGet("/api/traces", () => Results.Json(TelemetryQueries.Traces(telemetry.Spans()).Take(200).Select(t => new
        {
            traceId = t.TraceId, root = t.Root.Name, rootResource = t.Root.Resource, start = t.Start,
            durationMs = t.Duration.TotalMilliseconds, spans = t.SpanCount, errors = t.Errors, resources = t.Resources,
        })));
        app.MapGet("/api/traces/{id}", (string id) =>
        {
            var spans = telemetry.Spans().Where(s => s.TraceId == id).ToList();
            return spans.Count == 0 ? Results.NotFound() : Results.Json(spans.Select(s => new
            {
                s.SpanId, s.ParentSpanId, s.Name, s.Kind, s.Resource, s.Scope, s.Start, durationMs = s.Duration.TotalMilliseconds, s.Error,
                attributes = s.Attributes.GroupBy(a => a.Key).ToDictionary(g => g.Key, g => g.First().Value),
            }));
        });
        app.MapGet("/api/logs", (string? resource, string? level, string? q, string? trace) =>
            Results.Json(FilterLogs(resource, level, q, trace).Take(500)));
        app.MapGet("/api/metrics/methods", () => Results.Json(TelemetryQueries.Methods(telemetry.Series(), telemetry.Spans(), DateTimeOffset.UtcNow)
            .Select(m => new { m.Resource, m.Method, m.CallsPerSecond, m.P50Ms, m.P99Ms, m.ErrorsLastMinute })));
        app.MapGet("/api/telemetry", () => Results.Json(new
        {
            spans = new { received = telemetry.SpansReceived, dropped = telemetry.SpansDropped, limit = telemetry.Limits.MaxSpans },
            logs = new { received = telemetry.LogsReceived, dropped = telemetry.LogsDropped, limit = telemetry.Limits.MaxLogs },
            metricPoints = new { received = telemetry.PointsReceived, dropped = telemetry.PointsDropped, series = telemetry.Series().Count },
        }));
        return app;
    }

    // ----- access -----

    private bool Authorized(HttpRequest request) =>
        (request.Cookies.TryGetValue(CookieName, out var cookie) && Same(cookie, token))
        || (request.Headers.Authorization.ToString() is { Length: > 7 } auth && auth.StartsWith("Bearer ", StringComparison.Ordinal) && Same(auth[7..], token));

    private static bool Same(string a, string b) =>
        CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(a), Encoding.UTF8.GetBytes(b));

    private static string LoginForm(bool wrong) =>
        (wrong ? "<p class=\"bad\">That token is not this dashboard's.</p>" : "") +
        "<p>The AppHost printed a login link at start (<code>Dashboard: http://…/login?t=…</code>). Open it, or paste its token:</p>" +
        "<form method=\"get\" action=\"/login\"><input name=\"t\" size=\"40\" autofocus> <button>Log in</button></form>";

    // ----- resources -----

    private Resource? Find(string name) => resources.FirstOrDefault(r => string.Equals(r.Name, name, StringComparison.OrdinalIgnoreCase));

    private static object ToJson(Resource r) => new
    {
        name = r.Name,
        type = r.Type,
        state = r.State.ToString(),
        health = r.Health,
        healthDescription = r.HealthDescription,
        healthChecks = r.HealthChecks.Select(c => new { name = c.Name, status = c.Status, description = c.Description }),
        endpoints = ConsoleTable.Snapshot(r).ToDictionary(e => e.Key, e => e.Value),
        restarts = r.Restarts,
        pid = r.ProcessId,
        startedAt = r.StartedAt,
        uptimeSeconds = Uptime(r)?.TotalSeconds,
    };

    private static TimeSpan? Uptime(Resource r) =>
        r.StartedAt is { } started && r.State == ResourceState.Running ? DateTimeOffset.UtcNow - started : null;

    private string ResourcesView()
    {
        var html = new StringBuilder("<table id=\"resources\"><tr><th>Resource</th><th>Type</th><th>State</th><th>Health</th><th>Endpoints</th><th>Restarts</th><th>Uptime</th><th>Pid</th><th></th></tr>");
        foreach (var r in resources)
        {
            html.Append($"<tr data-resource=\"{E(r.Name)}\"><td><a href=\"/resources/{E(r.Name)}\">{E(r.Name)}</a></td><td>{E(r.Type)}</td>")
                .Append($"<td class=\"state {E(r.State.ToString())}\">{E(r.State.ToString())}</td><td class=\"{E(r.Health ?? "")}\">{E(r.Health ?? "")}{Why(r)}</td><td>")
                .AppendJoin("<br>", ConsoleTable.Snapshot(r).Select(e => e.Value.StartsWith("http", StringComparison.Ordinal)
                    ? $"{E(e.Key)} <a href=\"{E(e.Value)}\">{E(e.Value)}</a>" : $"{E(e.Key)} {E(e.Value)}"))
                .Append($"</td><td>{r.Restarts}</td><td>{FormatUptime(Uptime(r))}</td><td>{r.ProcessId}</td>")
                .Append($"<td><a href=\"/console?resource={E(r.Name)}\">console</a>{(r is ProjectResource ? $" · <a href=\"/logs?resource={E(r.Name)}\">logs</a>" : "")}{Actions(r)}</td></tr>");
        }
        return html.Append("</table>").Append(TelemetryNote()).ToString();
    }

    private static string Actions(Resource r) => r is not ProjectResource ? "" :
        r.State is ResourceState.Stopped or ResourceState.Failed
            ? $" <button data-action=\"start\" data-name=\"{E(r.Name)}\">start</button>"
            : $" <button data-action=\"stop\" data-name=\"{E(r.Name)}\">stop</button> <button data-action=\"restart\" data-name=\"{E(r.Name)}\">restart</button>";

    private string ResourceView(Resource r)
    {
        var html = new StringBuilder($"<p><a href=\"/\">&larr; all resources</a></p><p>{E(r.Type)} &middot; <span class=\"state {E(r.State.ToString())}\">{E(r.State.ToString())}</span> " +
                                     $"<span class=\"{E(r.Health ?? "")}\">{E(r.Health ?? "")}</span> &middot; restarts {r.Restarts} &middot; uptime {FormatUptime(Uptime(r))} &middot; pid {r.ProcessId}{Actions(r)}</p>");
        html.Append("<h2>Health checks</h2>");
        if (r.HealthChecks.Count == 0) html.Append($"<p>{E(r.HealthDescription ?? (r.Health is null ? "no health report yet" : "no checks reported"))}</p>");
        else
        {
            html.Append("<table><tr><th>Check</th><th>Status</th><th>Description</th></tr>");
            foreach (var c in r.HealthChecks) html.Append($"<tr><td>{E(c.Name)}</td><td class=\"{E(c.Status)}\">{E(c.Status)}</td><td>{E(c.Description ?? "")}</td></tr>");
            html.Append("</table>");
        }
        html.Append("<h2>Endpoints</h2><ul>");
        foreach (var e in ConsoleTable.Snapshot(r)) html.Append($"<li>{E(e.Key)} {E(e.Value)}</li>");
        html.Append("</ul>");
        if (r is ProjectResource project)
        {
            html.Append("<h2>Environment</h2><table class=\"env\">");
            foreach (var (key, value) in ProjectEnvironment.For(project, options).Where(e => e.Value is not null).OrderBy(e => e.Key, StringComparer.Ordinal))
                html.Append($"<tr><td>{E(key)}</td><td><code>{E(Secrets.Mask(key, value!))}</code></td></tr>");
            html.Append("</table>");
        }
        var lines = r.Logs.Snapshot().TakeLast(40);
        return html.Append($"<h2>Last console lines (<a href=\"/console?resource={E(r.Name)}\">live</a>)</h2><pre>{E(string.Join('\n', lines))}</pre>").ToString();
    }

    // ----- console -----

    private string ConsoleView(string? resource)
    {
        resource ??= resources.OfType<ProjectResource>().FirstOrDefault()?.Name ?? resources[0].Name;
        var options = string.Concat(resources.Select(r => $"<option{(r.Name == resource ? " selected" : "")}>{E(r.Name)}</option>"));
        return $$"""
            <form class="bar" method="get"><label>Resource <select name="resource" onchange="this.form.submit()">{{options}}</select></label>
            <label>Filter <input id="filter" placeholder="text"></label> <button type="button" id="pause">Pause</button> <span id="status"></span></form>
            <pre id="console" data-resource="{{E(resource)}}"></pre>
            <script>
            (() => {
              const pre = document.getElementById('console'), filter = document.getElementById('filter'), pause = document.getElementById('pause'), status = document.getElementById('status');
              let lines = [], paused = false, held = [];
              // Drawn at most once a frame: the first burst of a busy service is 2,000 lines.
              let queued = false;
              const draw = () => { queued = false; const f = filter.value.toLowerCase(); pre.textContent = lines.filter(l => !f || l.toLowerCase().includes(f)).join('\n'); pre.scrollTop = pre.scrollHeight; };
              const render = () => { if (!queued) { queued = true; requestAnimationFrame(draw); } };
              // Opened once the page has loaded, so the endless stream does not hold the page "loading".
              const open = () => { const es = new EventSource('/api/resources/' + encodeURIComponent(pre.dataset.resource) + '/console');
              es.onmessage = e => { const line = JSON.parse(e.data); if (paused) { held.push(line); return; } lines.push(line); if (lines.length > 2000) lines.splice(0, lines.length - 2000); render(); };
              es.onopen = () => status.textContent = paused ? 'paused' : 'live'; es.onerror = () => status.textContent = 'reconnecting…'; };
              if (document.readyState === 'complete') open(); else window.addEventListener('load', () => setTimeout(open, 0));
              filter.oninput = render;
              pause.onclick = () => { paused = !paused; pause.textContent = paused ? 'Resume' : 'Pause'; status.textContent = paused ? 'paused' : 'live'; if (!paused) { lines.push(...held); held = []; render(); } };
            })();
            </script>
            """;
    }

    private async Task ConsoleStreamAsync(HttpContext context, string name)
    {
        if (Find(name) is not { } r) { context.Response.StatusCode = 404; return; }
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        var ct = context.RequestAborted;
        var (lines, seq) = r.Logs.Since(0);
        try
        {
            while (!ct.IsCancellationRequested)
            {
                var sb = new StringBuilder();
                foreach (var line in lines) sb.Append("data: ").Append(JsonSerializer.Serialize(line)).Append("\n\n");
                if (sb.Length == 0) sb.Append(": keep-alive\n\n");
                await context.Response.WriteAsync(sb.ToString(), ct);
                await context.Response.Body.FlushAsync(ct);
                var next = r.Logs.NextAsync();
                if (r.Logs.Since(seq).Lines.Count == 0) await Task.WhenAny(next, Task.Delay(TimeSpan.FromSeconds(15), ct));
                (lines, seq) = r.Logs.Since(seq);
            }
        }
        catch (OperationCanceledException) { }
    }

    // ----- structured logs -----

    private IEnumerable<LogData> FilterLogs(string? resource, string? level, string? q, string? trace)
    {
        var min = string.IsNullOrEmpty(level) ? 0 : LevelRank(level);
        return telemetry.Logs().Reverse().Where(l =>
            (string.IsNullOrEmpty(resource) || l.Resource == resource) && LevelRank(l.Level) >= min
            && (string.IsNullOrEmpty(trace) || l.TraceId == trace)
            && (string.IsNullOrEmpty(q) || l.Message.Contains(q, StringComparison.OrdinalIgnoreCase) || l.Category.Contains(q, StringComparison.OrdinalIgnoreCase)));
    }

    private static int LevelRank(string? level) => level switch
    {
        "Trace" => 0, "Debug" => 1, null or "" or "Information" => 2, "Warning" => 3, "Error" => 4, "Critical" => 5, _ => 2,
    };

    private string LogsView(string? resource, string? level, string? q, string? trace)
    {
        var html = new StringBuilder("<form class=\"bar\" method=\"get\">")
            .Append(Select("resource", resource, ["", .. ServiceNames()])).Append(Select("level", level, ["", "Trace", "Debug", "Information", "Warning", "Error", "Critical"], "level ≥"))
            .Append($"<label>Text <input name=\"q\" value=\"{E(q ?? "")}\"></label>")
            .Append(trace is { Length: > 0 } ? $"<input type=\"hidden\" name=\"trace\" value=\"{E(trace)}\"> trace {E(trace)} (<a href=\"/logs\">all</a>)" : "")
            .Append(" <button>Filter</button></form>");
        var logs = FilterLogs(resource, level, q, trace).Take(300).ToList();
        html.Append($"<table id=\"logs\"><tr><th>Time</th><th>Resource</th><th>Level</th><th>Category</th><th>Message</th><th>Trace</th></tr>");
        foreach (var l in logs)
            html.Append($"<tr class=\"log\"><td>{l.Time:HH:mm:ss.fff}</td><td>{E(l.Resource)}</td><td class=\"{E(l.Level)}\">{E(l.Level)}</td><td><small>{E(l.Category)}</small></td>")
                .Append($"<td>{E(Cut(l.Message, 400))}</td><td>{(l.TraceId is { } t ? $"<a href=\"/traces/{t}\">{t[..8]}</a>" : "")}</td></tr>");
        html.Append("</table>");
        if (logs.Count == 0) html.Append("<p>No structured logs match yet.</p>");
        return html.Append(TelemetryNote()).ToString();
    }

    // ----- traces -----

    /// <summary>
    /// A trace of database spans and nothing else: the sweepers' periodic polls (the outbox relay's statements are not
    /// traced). Hidden from the list unless asked for (<c>all=true</c>), or they would bury the traces that matter.
    /// </summary>
    private static bool LonePoll(TraceSummary t) => t.OnlyDatabase;

    private string TracesView(string? resource, string? status, bool all)
    {
        var traces = TelemetryQueries.Traces(telemetry.Spans())
            .Where(t => all || !LonePoll(t))
            .Where(t => string.IsNullOrEmpty(resource) || t.Resources.Contains(resource))
            .Where(t => status switch { "error" => t.Errors > 0, "ok" => t.Errors == 0, _ => true })
            .Take(200).ToList();
        var html = new StringBuilder("<form class=\"bar\" method=\"get\">")
            .Append(Select("resource", resource, ["", .. ServiceNames()])).Append(Select("status", status, ["", "ok", "error"]))
            .Append($"<label><input type=\"checkbox\" name=\"all\" value=\"true\"{(all ? " checked" : "")}> include lone database polls</label>")
            .Append(" <button>Filter</button></form>")
            .Append("<table id=\"traces\"><tr><th>Start</th><th>Root operation</th><th>Duration</th><th>Spans</th><th>Errors</th><th>Resources</th></tr>");
        foreach (var t in traces)
            html.Append($"<tr class=\"trace\" data-trace=\"{t.TraceId}\"><td>{t.Start:HH:mm:ss.fff}</td><td><a href=\"/traces/{t.TraceId}\">{E(t.Root.Resource)}: {E(t.Root.Name)}</a></td>")
                .Append($"<td>{Ms(t.Duration)}</td><td>{t.SpanCount}</td><td class=\"{(t.Errors > 0 ? "Unhealthy" : "")}\">{t.Errors}</td><td>{E(string.Join(", ", t.Resources))}</td></tr>");
        html.Append("</table>");
        if (traces.Count == 0) html.Append("<p>No traces yet.</p>");
        return html.Append(TelemetryNote()).ToString();
    }

    private static readonly string[] Palette = ["#2f6fdb", "#17803d", "#b54708", "#7a3ed6", "#b42318", "#0e7490"];

    private string TraceView(string id)
    {
        var spans = TelemetryQueries.Waterfall(telemetry.Spans().Where(s => s.TraceId == id));
        if (spans.Count == 0) return $"<p>Trace {E(id)} is not (or no longer) in memory. <a href=\"/traces\">All traces</a></p>";
        var start = spans.Min(s => s.Span.Start);
        var total = Math.Max((spans.Max(s => s.Span.End) - start).TotalMilliseconds, 0.001);
        var colours = spans.Select(s => s.Span.Resource).Distinct().Select((r, i) => (r, Palette[i % Palette.Length])).ToDictionary(x => x.r, x => x.Item2);
        var logs = telemetry.Logs().Count(l => l.TraceId == id);
        var html = new StringBuilder($"<p><a href=\"/traces\">&larr; all traces</a> &middot; {spans.Count} spans &middot; {Ms(TimeSpan.FromMilliseconds(total))} &middot; ")
            .Append($"<a id=\"trace-logs\" href=\"/logs?trace={id}\">{logs} structured log{(logs == 1 ? "" : "s")} of this trace</a></p>")
            .Append("<div id=\"waterfall\">");
        foreach (var (span, depth) in spans)
        {
            var left = (span.Start - start).TotalMilliseconds / total * 100;
            var width = Math.Max(span.Duration.TotalMilliseconds / total * 100, 0.3);
            var attrs = string.Join("\n", span.Attributes.Select(a => $"{a.Key} = {a.Value}"));
            html.Append($"<div class=\"span{(span.Error ? " error" : "")}\" data-resource=\"{E(span.Resource)}\" data-kind=\"{E(span.Kind)}\" title=\"{E(attrs)}\">")
                .Append($"<div class=\"label\" style=\"padding-left:{depth * 14}px\"><b style=\"color:{colours[span.Resource]}\">{E(span.Resource)}</b> {E(span.Name)} <small>{E(span.Kind)}</small></div>")
                .Append($"<div class=\"track\"><div class=\"bar\" style=\"left:{F(left)}%;width:{F(width)}%;background:{(span.Error ? "#b42318" : colours[span.Resource])}\"></div>")
                .Append(left + width > 85
                    ? $"<span class=\"ms\" style=\"right:{F(100 - left)}%;padding-right:4px\">{Ms(span.Duration)}</span></div></div>"
                    : $"<span class=\"ms\" style=\"left:{F(left + width)}%;padding-left:4px\">{Ms(span.Duration)}</span></div></div>");
        }
        return html.Append("</div><p><small>Hover a span for its attributes.</small></p>").ToString();
    }

    // ----- metrics -----

    private string MetricsView(string? resource, string? q)
    {
        var now = DateTimeOffset.UtcNow;
        var series = telemetry.Series();
        var methods = TelemetryQueries.Methods(series, telemetry.Spans(), now, string.IsNullOrEmpty(resource) ? null : resource);
        var html = new StringBuilder("<form class=\"bar\" method=\"get\">")
            .Append(Select("resource", resource, ["", .. ServiceNames()]))
            .Append($"<label>Metric <input name=\"q\" value=\"{E(q ?? "")}\" placeholder=\"e.g. outbox, npgsql, masstransit\"></label> <button>Filter</button></form>")
            .Append("<h2>gRPC methods</h2><table id=\"methods\"><tr><th>Resource</th><th>Method</th><th>Calls/s (10 s)</th><th>p50 ms</th><th>p99 ms</th><th>Errors (1 min)</th><th>Calls/s, last 5 min</th></tr>");
        foreach (var m in methods)
            html.Append($"<tr class=\"method\" data-method=\"{E(m.Method)}\" data-rate=\"{F(m.CallsPerSecond)}\"><td>{E(m.Resource)}</td><td>{E(m.Method)}</td><td class=\"rate\">{m.CallsPerSecond:0.0}</td>")
                .Append($"<td>{(m.P50Ms is { } p50 ? p50.ToString("0.0", CultureInfo.InvariantCulture) : "")}</td><td>{(m.P99Ms is { } p99 ? p99.ToString("0.0", CultureInfo.InvariantCulture) : "")}</td>")
                .Append($"<td class=\"{(m.ErrorsLastMinute > 0 ? "Unhealthy" : "")}\">{m.ErrorsLastMinute}</td><td>{Spark(m.RateHistory)}</td></tr>");
        html.Append("</table>");
        if (methods.Count == 0) html.Append("<p>No gRPC calls measured yet.</p>");

        html.Append("<h2>All instruments</h2><p><small>Counters: total and rate over the last 10 s; gauges: last value; histograms: count, rate, p50/p99 over the last minute.</small></p>")
            .Append("<table id=\"instruments\"><tr><th>Resource</th><th>Metric</th><th>Attributes</th><th>Value</th><th>Rate/s</th><th>Last 5 min</th></tr>");
        foreach (var s in series.Where(s => (string.IsNullOrEmpty(resource) || s.Resource == resource)
                                            && (string.IsNullOrEmpty(q) || s.Name.Contains(q, StringComparison.OrdinalIgnoreCase)))
                     .OrderBy(s => s.Resource).ThenBy(s => s.Name).ThenBy(s => s.Attributes).Take(400))
        {
            var points = s.Points();
            if (points.Length == 0) continue;
            var last = points[^1];
            var histogram = s.Kind == "histogram";
            var value = histogram ? $"count {last.Count}" : last.Value.ToString(Math.Abs(last.Value) >= 100 ? "0" : "0.###", CultureInfo.InvariantCulture);
            var cumulative = s.Kind is "counter" or "histogram";
            var rate = cumulative ? (TelemetryQueries.Increase(points, now.AddSeconds(-10), now, histogram) / 10).ToString("0.##", CultureInfo.InvariantCulture) : "";
            var history = cumulative ? TelemetryQueries.Rates(points, now, 60, 5, histogram) : TelemetryQueries.Values(points, now, 60, 5);
            html.Append($"<tr><td>{E(s.Resource)}</td><td>{E(s.Name)} <small>{E(s.Unit)}</small></td><td><small>{E(Cut(s.Attributes, 120))}</small></td><td>{E(value)}</td><td>{rate}</td><td>{Spark(history)}</td></tr>");
        }
        return html.Append("</table>").Append(TelemetryNote()).ToString();
    }

    /// <summary>A small SVG line chart (server-drawn, no script): values oldest first, scaled to their maximum.</summary>
    private static string Spark(double[] values, int width = 180, int height = 28)
    {
        var max = values.Length == 0 ? 0 : values.Max();
        if (max <= 0) return $"<svg class=\"spark\" width=\"{width}\" height=\"{height}\"><line x1=\"0\" y1=\"{height - 1}\" x2=\"{width}\" y2=\"{height - 1}\" stroke=\"#ccc\"/></svg>";
        var step = (double)width / Math.Max(values.Length - 1, 1);
        var points = string.Join(" ", values.Select((v, i) => $"{F(i * step)},{F(height - 1 - v / max * (height - 3))}"));
        return $"<svg class=\"spark\" width=\"{width}\" height=\"{height}\"><polyline fill=\"none\" stroke=\"#2f6fdb\" stroke-width=\"1.5\" points=\"{points}\"/><text x=\"{width - 2}\" y=\"9\" text-anchor=\"end\">max {max:0.#}</text></svg>";
    }

    // ----- business pulse -----

    private string PulseView()
    {
        var now = DateTimeOffset.UtcNow;
        var spans = telemetry.Spans();
        var pulse = TelemetryQueries.BusinessPulse(spans, now);
        var html = new StringBuilder("<p>From the traces of the last 10 minutes (what only this suite can show): per minute, newest on the right.</p>")
            .Append("<table id=\"pulse\"><tr><th>What</th><th>Last minute</th><th>10 minutes</th><th>Per minute</th></tr>");
        foreach (var p in pulse)
            html.Append($"<tr><td>{E(p.Name)}</td><td>{p.PerMinute[^1]}</td><td>{p.PerMinute.Sum()}</td><td>{Bars(p.PerMinute)}</td></tr>");
        html.Append("</table>");
        var lags = TelemetryQueries.OrderToPointsLags(spans).Select(l => l.TotalMilliseconds).ToList();
        html.Append("<h2>Order → points lag</h2>");
        html.Append(lags.Count == 0
            ? "<p>No order has reached the loyalty ledger in the traces in memory yet.</p>"
            : $"<p id=\"lag\">{lags.Count} orders: p50 <b>{TelemetryQueries.Percentile(lags, 0.5):0.0} ms</b>, p99 <b>{TelemetryQueries.Percentile(lags, 0.99):0.0} ms</b>, max {lags.Max():0.0} ms " +
              "<small>(RecordOrder start → loyalty consumer end, in the same trace)</small></p>");
        return html.Append(TelemetryNote()).ToString();
    }

    private static string Bars(int[] values, int width = 200, int height = 30)
    {
        var max = Math.Max(values.DefaultIfEmpty(0).Max(), 1);
        var w = (double)width / values.Length;
        var bars = string.Concat(values.Select((v, i) => v == 0 ? "" :
            $"<rect x=\"{F(i * w + 1)}\" y=\"{F(height - (double)v / max * (height - 2))}\" width=\"{F(w - 2)}\" height=\"{F((double)v / max * (height - 2))}\" fill=\"#17803d\"><title>{v}</title></rect>"));
        return $"<svg class=\"spark\" width=\"{width}\" height=\"{height}\"><line x1=\"0\" y1=\"{height - 0.5}\" x2=\"{width}\" y2=\"{height - 0.5}\" stroke=\"#ccc\"/>{bars}</svg>";
    }

    // ----- shared -----

    private IEnumerable<string> ServiceNames() => resources.OfType<ProjectResource>().Select(p => p.Name);

    private string TelemetryNote() =>
        $"<p class=\"note\">In memory: {telemetry.Spans().Count:N0} spans (dropped {telemetry.SpansDropped:N0}, limit {telemetry.Limits.MaxSpans:N0}), " +
        $"{telemetry.Logs().Count:N0} logs (dropped {telemetry.LogsDropped:N0}, limit {telemetry.Limits.MaxLogs:N0}), " +
        $"{telemetry.Series().Count:N0} metric series ({telemetry.PointsDropped:N0} points dropped).</p>";

    private static string Select(string name, string? value, IEnumerable<string> choices, string? label = null) =>
        $"<label>{E(label ?? name)} <select name=\"{name}\">" +
        string.Concat(choices.Select(c => $"<option value=\"{E(c)}\"{(c == (value ?? "") ? " selected" : "")}>{(c.Length == 0 ? "all" : E(c))}</option>")) +
        "</select></label> ";

    /// <summary>The reason a resource is not healthy, under its health word.</summary>
    private static string Why(Resource r) => r.HealthDescription is { Length: > 0 } d ? $"<br><small>{E(d)}</small>" : "";

    private static string FormatUptime(TimeSpan? uptime) => uptime switch
    {
        null => "",
        { TotalHours: >= 1 } u => $"{(int)u.TotalHours}h {u.Minutes}m",
        { TotalMinutes: >= 1 } u => $"{u.Minutes}m {u.Seconds}s",
        { } u => $"{u.Seconds}s",
    };

    private static string Ms(TimeSpan t) => t.TotalMilliseconds >= 1000 ? $"{t.TotalSeconds:0.00} s" : $"{t.TotalMilliseconds:0.0} ms";
    private static string F(double d) => d.ToString("0.##", CultureInfo.InvariantCulture);
    private static string Cut(string text, int max) => text.Length <= max ? text : text[..max] + "…";

    private static readonly (string Path, string Label)[] Nav =
        [("/", "Resources"), ("/console", "Console"), ("/logs", "Structured logs"), ("/traces", "Traces"), ("/metrics", "Metrics"), ("/pulse", "Business pulse")];

    /// <summary>A page, or with <c>?partial=true</c> only its main part (what the page's script fetches to stay live).</summary>
    private static IResult Page(string title, string section, string body, bool? partial, bool live = true) =>
        partial == true ? Results.Content(body, "text/html; charset=utf-8") : Html(title, body, live: live, section: section);

    private static IResult Html(string title, string body, int status = 200, bool live = false, string section = "") => Results.Content($$"""
        <!doctype html>
        <html><head><meta charset="utf-8"><title>{{E(title)}} — Crm suite</title>
        <style>
          body { font-family: system-ui, sans-serif; margin: 0; color: #222; font-size: 14px; }
          header { background: #1d2939; color: #fff; padding: .6em 1.5em; display: flex; gap: 1.2em; align-items: center; }
          header a { color: #d0d5dd; text-decoration: none; } header a.on { color: #fff; font-weight: 600; border-bottom: 2px solid #fff; }
          header .brand { font-weight: 700; color: #fff; margin-right: 1em; } header .live { margin-left: auto; font-size: 12px; color: #98a2b3; }
          main { padding: 1em 1.5em; } h1 { font-size: 1.3em; margin: .2em 0 .6em; } h2 { font-size: 1.05em; margin-top: 1.4em; }
          table { border-collapse: collapse; } th, td { padding: .3em .7em; border-bottom: 1px solid #e4e7ec; text-align: left; vertical-align: top; }
          th { background: #f2f4f7; font-weight: 600; }
          .Running, .Healthy { color: #17803d; } .Failed, .Unhealthy, .Error, .Critical, .bad { color: #b42318; } .Restarting, .Starting, .Waiting, .Stopping, .Degraded, .Warning { color: #b54708; }
          .Stopped { color: #667085; }
          pre { background: #f6f6f6; padding: 1em; overflow: auto; font-size: 12px; max-height: 70vh; }
          .bar { margin: .3em 0 1em; display: flex; gap: .8em; align-items: center; flex-wrap: wrap; }
          .note { color: #667085; font-size: 12px; margin-top: 1.5em; } code { font-size: 12px; }
          #waterfall .span { display: flex; border-bottom: 1px solid #f2f4f7; font-size: 12px; }
          #waterfall .label { width: 42%; padding: 3px 0; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
          #waterfall .track { position: relative; width: 58%; }
          #waterfall .bar { position: absolute; top: 5px; height: 12px; border-radius: 2px; margin: 0; }
          #waterfall .ms { position: absolute; top: 3px; color: #475467; white-space: nowrap; }
          #waterfall .error .label { color: #b42318; }
          svg.spark text { font-size: 9px; fill: #667085; }
          button { cursor: pointer; }
        </style></head>
        <body><header><span class="brand">Crm suite</span>{{string.Concat(Nav.Select(n => $"<a href=\"{n.Path}\"{(n.Path == section ? " class=\"on\"" : "")}>{n.Label}</a>"))}}<span class="live" id="live-status">{{(live ? "live" : "")}}</span></header>
        <main><h1>{{E(title)}}</h1><div id="live"{{(live ? " data-live" : "")}}>{{body}}</div></main>
        <script>
        (() => {
          const box = document.getElementById('live'), status = document.getElementById('live-status');
          document.addEventListener('click', async e => {
            const b = e.target.closest('button[data-action]'); if (!b) return;
            b.disabled = true; status.textContent = b.dataset.action + ' ' + b.dataset.name + '…';
            await fetch('/api/resources/' + encodeURIComponent(b.dataset.name) + '/' + b.dataset.action, { method: 'POST' });
            refresh();
          });
          if (!box.hasAttribute('data-live')) return;
          let busy = false;
          async function refresh() {
            if (busy || document.activeElement?.closest('form')) return; // not while someone types in a filter
            busy = true;
            try {
              const url = new URL(location.href); url.searchParams.set('partial', 'true');
              const r = await fetch(url);
              if (r.ok) { box.innerHTML = await r.text(); status.textContent = 'live · ' + new Date().toLocaleTimeString(); }
              else status.textContent = 'HTTP ' + r.status;
            } catch { status.textContent = 'dashboard unreachable'; }
            busy = false;
          }
          // Resources every second (states change fast); the telemetry pages, heavier to draw, every two. Not while hidden.
          const every = location.pathname === '/' || location.pathname.startsWith('/resources/') ? 1000 : 2000;
          setInterval(() => { if (!document.hidden) refresh(); }, every);
        })();
        </script></body></html>
        """, "text/html; charset=utf-8", statusCode: status);

    private static string E(string text) => WebUtility.HtmlEncode(text);

    private sealed class NoConsoleLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}

/// <summary>Masks secrets in environment values shown on the dashboard.</summary>
internal static partial class Secrets
{
    public const string Masked = "••••••";

    /// <summary>Variables named *Password*, *Token*, *Key*, *Secret* entirely; passwords inside connection strings and URIs.</summary>
    public static string Mask(string name, string value)
    {
        if (SecretName().IsMatch(name)) return value.Length == 0 ? "" : Masked;
        value = PasswordPair().Replace(value, m => m.Groups[1].Value + "=" + Masked);
        return UriPassword().Replace(value, m => m.Groups[1].Value + Masked + "@");
    }

    [GeneratedRegex("password|token|key|secret|pwd", RegexOptions.IgnoreCase)]
    private static partial Regex SecretName();

    [GeneratedRegex(@"(?i)\b(password|pwd)=([^;,]*)")]
    private static partial Regex PasswordPair();

    [GeneratedRegex(@"(://[^:/@\s]+:)[^@\s]*@")]
    private static partial Regex UriPassword();
}
