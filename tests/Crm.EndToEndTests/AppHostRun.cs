using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace Crm.EndToEndTests;

/// <summary>
/// The built AppHost in its own process, as an operator runs it: a throw-away data folder, a
/// dashboard on a free port; <see cref="ResourceAsync"/> reads <c>/api/resources</c>.
/// </summary>
internal sealed class AppHostRun : IAsyncDisposable
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(10) };
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private AppHostRun(string folder, Process process)
    {
        Folder = folder;
        Process = process;
    }

    public string Folder { get; }
    public Process Process { get; }
    public ConcurrentQueue<string> Lines { get; } = new();
    /// <summary>The dashboard's base URL (http://127.0.0.1:port).</summary>
    public string Dashboard { get; private set; } = "";

    /// <summary>The dashboard's login token, from the link the AppHost printed (<c>Dashboard: http://…/login?t=…</c>).</summary>
    public string DashboardToken { get; private set; } = "";

    /// <summary>The printed login link: opening it logs a browser in.</summary>
    public string DashboardLoginUrl => $"{Dashboard}/login?t={DashboardToken}";
    public TimeSpan StartTime { get; private set; }

    /// <summary>Every pid the dashboard showed (services and servers), to check that none outlives the AppHost.</summary>
    public HashSet<int> SeenPids { get; } = [];

    /// <summary>Starts the AppHost (ephemeral, in <paramref name="folder"/> or a new temp folder) and waits for <c>Crm suite is ready.</c></summary>
    public static async Task<AppHostRun> StartAsync(string? folder = null, TimeSpan? timeout = null, params string[] arguments)
    {
        if (!File.Exists(TestSupport.AppHostDll)) throw new InvalidOperationException($"{TestSupport.AppHostDll} is not built");
        folder ??= Path.Combine(Path.GetTempPath(), "crm-e2e-" + Guid.NewGuid().ToString("N")[..8]);
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { TestSupport.AppHostDll, "--AppHost:Ephemeral=true", $"--AppHost:DataDirectory={folder}", "--AppHost:DashboardUrl=http://127.0.0.1:0" })
            info.ArgumentList.Add(a);
        foreach (var a in arguments) info.ArgumentList.Add(a);
        var stopwatch = Stopwatch.StartNew();
        var run = new AppHostRun(folder, Process.Start(info)!);
        DataReceivedEventHandler collect = (_, e) =>
        {
            if (e.Data is null) return;
            run.Lines.Enqueue(e.Data);
            if (e.Data == "Crm suite is ready.") run._ready.TrySetResult();
        };
        run.Process.OutputDataReceived += collect;
        run.Process.ErrorDataReceived += collect;
        run.Process.BeginOutputReadLine();
        run.Process.BeginErrorReadLine();
        try
        {
            var exited = run.Process.WaitForExitAsync();
            if (await Task.WhenAny(run._ready.Task, exited, Task.Delay(timeout ?? TimeSpan.FromSeconds(150))) != run._ready.Task)
                throw new InvalidOperationException("The AppHost did not print 'Crm suite is ready.':\n" + run.Tail(80));
            run.StartTime = stopwatch.Elapsed;
            var login = run.Lines.Select(l => Regex.Match(l, @"Dashboard: (http://[^/\s]+)/login\?t=(\w+)")).First(m => m.Success);
            (run.Dashboard, run.DashboardToken) = (login.Groups[1].Value, login.Groups[2].Value);
            await run.RememberPidsAsync();
            return run;
        }
        catch
        {
            await run.DisposeAsync();
            throw;
        }
    }

    public async Task<JsonElement[]> ResourcesAsync()
    {
        return [.. (await GetJsonAsync("/api/resources")).EnumerateArray()];
    }

    /// <summary>GET of the dashboard's JSON API with its token (the API answers 401 without).</summary>
    public async Task<JsonElement> GetJsonAsync(string path)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, Dashboard + path);
        request.Headers.Authorization = new("Bearer", DashboardToken);
        using var response = await Http.SendAsync(request);
        response.EnsureSuccessStatusCode();
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    public async Task<JsonElement> ResourceAsync(string name) =>
        (await ResourcesAsync()).Single(r => r.GetProperty("name").GetString() == name);

    public async Task RememberPidsAsync()
    {
        foreach (var r in await ResourcesAsync())
            if (r.GetProperty("pid").ValueKind == JsonValueKind.Number) SeenPids.Add(r.GetProperty("pid").GetInt32());
    }

    public async Task<string> GrpcUrlAsync(string service) =>
        (await ResourceAsync(service)).GetProperty("endpoints").GetProperty("http").GetString()!;

    /// <summary>SIGINT (Ctrl+C), then the exit code (within 30 s).</summary>
    public async Task<int> StopAsync()
    {
        // A test run started in the background (`./crm test &`) hands its children SIGINT ignored, as the shell does for
        // background jobs, and .NET leaves an ignored SIGINT alone: the AppHost would never see it. It stops the same way
        // on SIGTERM, so that is sent then.
        var signal = IgnoresSigint(Process.Id) ? TestSupport.SIGTERM : TestSupport.SIGINT;
        TestSupport.Signal(Process.Id, signal);
        try
        {
            await Process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch (TimeoutException)
        {
            // Say whether the signal is still pending or ignored, what the process waits on and how many threads it runs.
            throw new TimeoutException($"The AppHost (pid {Process.Id}) did not exit within 30 s of signal {signal}; {ProcStatus(Process.Id)}");
        }
        return Process.ExitCode;
    }

    private static bool IgnoresSigint(int pid) =>
        File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("SigIgn:", StringComparison.Ordinal)) is { } line
        && (Convert.ToUInt64(line["SigIgn:".Length..].Trim(), 16) & (1UL << (TestSupport.SIGINT - 1))) != 0;

    private static string ProcStatus(int pid)
    {
        try
        {
            var wanted = new[] { "State:", "Threads:", "SigPnd:", "ShdPnd:", "SigBlk:", "SigIgn:", "SigCgt:" };
            var status = File.ReadLines($"/proc/{pid}/status").Where(l => wanted.Any(l.StartsWith)).Select(l => Regex.Replace(l, @"\s+", " "));
            var wchan = File.Exists($"/proc/{pid}/wchan") ? File.ReadAllText($"/proc/{pid}/wchan") : "?";
            return $"/proc status: {string.Join(", ", status)}; wchan {wchan}";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return $"/proc status unreadable: {e.Message}"; }
    }

    public string Tail(int lines) => string.Join('\n', Lines.TakeLast(lines));

    public void WriteTail(ITestOutputHelper output, int lines = 150)
    {
        foreach (var line in Lines.TakeLast(lines)) output.WriteLine(line);
    }

    /// <summary>SIGKILLs the AppHost if it still runs; its watchdogs stop the rest. Waits for that, deletes the folder.</summary>
    public async ValueTask DisposeAsync()
    {
        if (!Process.HasExited) Process.Kill();
        await TestSupport.EventuallyAsync(() => TestSupport.ProcessesMentioning(Folder).Count == 0 && !SeenPids.Any(TestSupport.IsAlive), TimeSpan.FromSeconds(30));
        try { if (Directory.Exists(Folder)) Directory.Delete(Folder, recursive: true); } catch (IOException) { }
        Process.Dispose();
    }
}
