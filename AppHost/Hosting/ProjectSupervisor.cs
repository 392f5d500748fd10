using System.Text.Json;
using Crm.Launcher;
using Microsoft.Extensions.Logging;

namespace Crm.AppHost.Hosting;

/// <summary>
/// Runs one project: waits for what it waits for, starts <c>dotnet &lt;dll&gt;</c> under the watchdog,
/// polls GET /health on its management endpoint (the health shown is what /health says: Healthy,
/// Degraded or Unhealthy, with the failing checks), restarts it when it exits (back-off 1 s, 2 s,
/// 4 s … 30 s; back to 1 s after a minute of running), echoes its output with a name prefix.
/// </summary>
/// <remarks>
/// The service never runs unsupervised: if its watchdog is killed, the kernel sends the service
/// SIGTERM (<see cref="ChildProcessOptions.ParentDeathSignal"/>), and a new copy is started only once
/// the old one is gone (SIGKILLed after 10 s), so two never share the ports.
/// </remarks>
internal sealed class ProjectSupervisor(ProjectResource project, AppHostOptions options, ILogger logger, HttpClient http)
{
    private static readonly TimeSpan MaxBackOff = TimeSpan.FromSeconds(30);
    private CancellationTokenSource _stopping = new();
    private ChildProcess? _process;
    private Task _loop = Task.CompletedTask;
    private readonly SemaphoreSlim _control = new(1, 1);

    public ProjectResource Project => project;

    /// <summary>Path of the built dll: &lt;project&gt;/bin/&lt;Configuration&gt;/&lt;tfm&gt;/&lt;project name&gt;.dll.</summary>
    public string DllPath => Path.Combine(project.ProjectDirectory, "bin", options.BuildConfiguration, options.TargetFramework,
        Path.GetFileNameWithoutExtension(project.ProjectPath) + ".dll");

    public void Start() => _loop = Task.Run(RunAsync);

    /// <summary>The dashboard's stop action: as at shutdown (SIGTERM, then SIGKILL after 10 s); the project stays Stopped.</summary>
    public async Task StopFromDashboardAsync()
    {
        await _control.WaitAsync();
        try
        {
            if (project.State is ResourceState.Stopped) return;
            logger.LogInformation("{Project}: stop requested from the dashboard", project.Name);
            await StopAsync();
        }
        finally { _control.Release(); }
    }

    /// <summary>The dashboard's start action: runs a stopped project again (waits for its dependencies, then starts it).</summary>
    public async Task StartFromDashboardAsync()
    {
        await _control.WaitAsync();
        try
        {
            if (!_loop.IsCompleted) return; // running (or restarting) already
            logger.LogInformation("{Project}: start requested from the dashboard", project.Name);
            _stopping.Dispose();
            _stopping = new CancellationTokenSource();
            _process = null;
            Start();
        }
        finally { _control.Release(); }
    }

    /// <summary>The dashboard's restart action: stop, then start.</summary>
    public async Task RestartFromDashboardAsync()
    {
        await StopFromDashboardAsync();
        project.Restarts++;
        await StartFromDashboardAsync();
    }

    /// <summary>Stops the loop and the process (SIGTERM, up to 10 s, then SIGKILL).</summary>
    public async Task StopAsync()
    {
        await _stopping.CancelAsync();
        project.State = ResourceState.Stopping;
        try { await _loop; } catch (OperationCanceledException) { } // ends promptly: every wait in it is cancellable
        if (_process is { } process) await process.StopAsync(TimeSpan.FromSeconds(10));
        project.State = ResourceState.Stopped;
        project.Health = null;
        project.ProcessId = null;
    }

    private async Task RunAsync()
    {
        var ct = _stopping.Token;
        try
        {
            project.State = ResourceState.Waiting;
            foreach (var dependency in project.WaitsFor)
            {
                if (!dependency.IsReady) logger.LogInformation("{Project} waits for {Dependency}", project.Name, dependency.Name);
                await dependency.WhenReady.WaitAsync(ct);
            }
            await StopLeftoverAsync();
            var backOff = TimeSpan.FromSeconds(1);
            while (!ct.IsCancellationRequested)
            {
                var started = DateTimeOffset.UtcNow;
                var code = await RunOnceAsync(ct);
                if (ct.IsCancellationRequested) break;

                if (DateTimeOffset.UtcNow - started > TimeSpan.FromMinutes(1)) backOff = TimeSpan.FromSeconds(1);
                project.Restarts++;
                project.State = ResourceState.Restarting;
                project.Health = null;
                project.ProcessId = null;
                logger.LogWarning("{Project} exited with code {Code}; restarting in {Seconds}s (restart #{Restart})",
                    project.Name, code, backOff.TotalSeconds, project.Restarts);
                await Task.Delay(backOff, ct);
                backOff = TimeSpan.FromTicks(Math.Min(backOff.Ticks * 2, MaxBackOff.Ticks));
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
        catch (Exception e)
        {
            project.State = ResourceState.Failed;
            logger.LogError(e, "{Project} failed", project.Name);
        }
    }

    private async Task<int> RunOnceAsync(CancellationToken ct)
    {
        project.State = ResourceState.Starting;
        var process = ChildProcess.Start(new ChildProcessOptions
        {
            Name = project.Name,
            FileName = DotnetHost(),
            Arguments = [DllPath],
            WorkingDirectory = project.ProjectDirectory,
            Environment = ProjectEnvironment.For(project, options),
            LogFile = Path.Combine(options.DataDirectory, "logs", project.Name + ".log"),
            StopSignal = Signals.SIGTERM,
            StopTimeout = TimeSpan.FromSeconds(10),
            OutputReceived = line =>
            {
                project.Logs.Add(line);
                ConsoleOutput.WriteResourceLine(project.Name, line);
            },
        });
        _process = process;
        await process.WaitForPidAsync(ct);
        project.ProcessId = process.Pid;
        await File.WriteAllTextAsync(PidFile, $"{process.Pid}\n{process.WatchdogPid}\n", CancellationToken.None);
        project.StartedAt = DateTimeOffset.UtcNow;
        project.State = ResourceState.Running;

        using var healthLoop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var health = PollHealthAsync(healthLoop.Token);
        // Exited also waits for the end of the output; the pid check sees a SIGKILL at once.
        while (!process.Exited.IsCompleted && process.IsRunning && !ct.IsCancellationRequested)
            await Task.WhenAny(process.Exited, Task.Delay(TimeSpan.FromSeconds(1), ct));
        ct.ThrowIfCancellationRequested();
        await healthLoop.CancelAsync();
        await health;
        await EnsureGoneAsync(process);
        // The pid check can see the death before the watchdog has reported the code (its output is still
        // draining): wait for that report briefly, so the log says 137 for a SIGKILL rather than -1.
        await Task.WhenAny(process.Exited, Task.Delay(TimeSpan.FromSeconds(5), CancellationToken.None));
        return process.Exited.IsCompletedSuccessfully ? process.Exited.Result : -1;
    }

    /// <summary>
    /// After its watchdog ended, the service must be gone before a new copy takes its ports: it got
    /// SIGTERM from the kernel when the watchdog died; SIGKILL after 10 s.
    /// </summary>
    private async Task EnsureGoneAsync(ChildProcess process)
    {
        if (process.Pid is not { } pid || !Signals.IsAlive(pid)) return;
        logger.LogWarning("{Project} (pid {Pid}) still runs after its watchdog ended; waiting for it to stop", project.Name, pid);
        for (var i = 0; i < 100 && Signals.IsAlive(pid); i++) await Task.Delay(100);
        if (Signals.IsAlive(pid))
        {
            logger.LogWarning("{Project} (pid {Pid}) did not stop within 10 s; killing it", project.Name, pid);
            Signals.Send(pid, Signals.SIGKILL);
            for (var i = 0; i < 50 && Signals.IsAlive(pid); i++) await Task.Delay(100);
        }
    }

    private string PidFile => Path.Combine(options.DataDirectory, "logs", project.Name + ".pid");

    /// <summary>
    /// A copy of this project left running by an AppHost that died together with its watchdogs
    /// (kept data folder only): stop it before starting a new one.
    /// </summary>
    private async Task StopLeftoverAsync()
    {
        if (!File.Exists(PidFile)) return;
        var pids = (await File.ReadAllLinesAsync(PidFile)).Select(l => int.TryParse(l, out var pid) ? pid : 0)
            .Where(pid => pid > 0 && Signals.IsAlive(pid) && ProcessTable.CommandLine(pid) is { } cmd
                && (cmd.Contains(DllPath, StringComparison.Ordinal)))
            .ToList();
        if (pids.Count == 0) return;
        logger.LogWarning("Stopping a leftover {Project} (pid {Pids}) from an earlier run", project.Name, string.Join(", ", pids));
        pids.ForEach(pid => Signals.Send(pid, Signals.SIGTERM));
        for (var i = 0; i < 100 && pids.Any(Signals.IsAlive); i++) await Task.Delay(100);
        pids.Where(Signals.IsAlive).ToList().ForEach(pid => Signals.Send(pid, Signals.SIGKILL));
    }

    /// <summary>
    /// GET /health every second until healthy, then every 2 s; the first success (Healthy or Degraded,
    /// both 200) marks the project ready. Health and description are what /health says.
    /// </summary>
    private async Task PollHealthAsync(CancellationToken ct)
    {
        try
        {
            while (!ct.IsCancellationRequested)
            {
                bool ok;
                string status;
                string? description;
                try
                {
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    timeout.CancelAfter(TimeSpan.FromSeconds(3));
                    using var response = await http.GetAsync(project.HealthUrl, timeout.Token);
                    ok = response.IsSuccessStatusCode;
                    var body = await response.Content.ReadAsStringAsync(timeout.Token);
                    (status, description) = HealthReport.Read(ok, (int)response.StatusCode, body);
                    project.HealthChecks = HealthReport.Checks(body);
                }
                catch (Exception e) when (e is HttpRequestException or OperationCanceledException && !ct.IsCancellationRequested)
                {
                    (ok, status, description) = (false, "Unhealthy", e is OperationCanceledException ? "/health did not answer within 3 s" : "/health: " + e.Message);
                    project.HealthChecks = [];
                }
                if (ct.IsCancellationRequested) break;
                var was = project.Health;
                (project.Health, project.HealthDescription) = (status, description);
                if (status != was)
                {
                    if (status == "Healthy") logger.LogInformation("{Project} is healthy", project.Name);
                    else if (was is not null) logger.LogWarning("{Project} is {Status}: {Description}", project.Name, status, description);
                }
                if (ok) project.MarkReady();
                await Task.Delay(status == "Healthy" ? TimeSpan.FromSeconds(2) : TimeSpan.FromSeconds(1), ct);
            }
        }
        catch (OperationCanceledException) { }
    }

    /// <summary>The dotnet host that runs us (same SDK/runtime), else the one on PATH.</summary>
    private static string DotnetHost() =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host
        : Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self
        : "dotnet";
}

/// <summary>Reads the JSON of a service's /health: <c>{ status, checks: { name: { status, description } } }</c>.</summary>
internal static class HealthReport
{
    /// <summary>The overall status, and the checks that are not Healthy as "name: Status (description)".</summary>
    public static (string Status, string? Description) Read(bool success, int statusCode, string body)
    {
        try
        {
            using var json = JsonDocument.Parse(body);
            var root = json.RootElement;
            if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("status", out var s) && s.GetString() is { Length: > 0 } status)
            {
                var failing = new List<string>();
                if (root.TryGetProperty("checks", out var checks) && checks.ValueKind == JsonValueKind.Object)
                {
                    foreach (var check in checks.EnumerateObject())
                    {
                        var checkStatus = check.Value.TryGetProperty("status", out var cs) ? cs.GetString() : null;
                        if (checkStatus is null or "Healthy") continue;
                        var why = check.Value.TryGetProperty("description", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString() : null;
                        failing.Add(why is { Length: > 0 } ? $"{check.Name}: {checkStatus} ({Cut(why)})" : $"{check.Name}: {checkStatus}");
                    }
                }
                return (status, failing.Count > 0 ? string.Join("; ", failing) : null);
            }
        }
        catch (JsonException) { }
        return success ? ("Healthy", null) : ("Unhealthy", $"/health answered HTTP {statusCode}");
    }

    /// <summary>Every check of a /health report: name, status, description (empty when the body is not such a report).</summary>
    public static IReadOnlyList<HealthCheckResult> Checks(string body)
    {
        try
        {
            using var json = JsonDocument.Parse(body);
            if (json.RootElement.ValueKind != JsonValueKind.Object || !json.RootElement.TryGetProperty("checks", out var checks) || checks.ValueKind != JsonValueKind.Object)
                return [];
            return [.. checks.EnumerateObject().Select(c => new HealthCheckResult(c.Name,
                c.Value.TryGetProperty("status", out var s) ? s.GetString() ?? "" : "",
                c.Value.TryGetProperty("description", out var d) && d.ValueKind == JsonValueKind.String ? Cut(d.GetString()!) : null))];
        }
        catch (JsonException) { return []; }
    }

    private static string Cut(string text) => text.Length <= 300 ? text : text[..300] + "…";
}

/// <summary>One health check of a service, as its /health reported it.</summary>
public sealed record HealthCheckResult(string Name, string Status, string? Description);
