using System.Diagnostics;
using System.Globalization;
using Crm.Launcher.Internal;
using Microsoft.Extensions.Logging;

namespace Crm.Launcher;

/// <summary>
/// One child process run under the watchdog (<c>setsid bash -c WATCHDOG owner-pid signal grace setpriv --pdeathsig SIG -- cmd…</c>):
/// its output goes to a log file, to the logger at debug level and to a ring of recent lines; it
/// never outlives this process, nor its watchdog (the kernel sends it its stop signal when the
/// watchdog dies, even by SIGKILL: PR_SET_PDEATHSIG through <c>setpriv --pdeathsig</c>);
/// <see cref="StopAsync"/> sends the stop signal and kills after a timeout.
/// </summary>
public sealed class ChildProcess : IAsyncDisposable
{
    private readonly ChildProcessOptions _options;
    private readonly Process _process;
    private readonly Queue<string> _recent = new();
    private readonly StreamWriter? _log;
    private readonly TaskCompletionSource<int> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _pidKnown = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private ChildProcess(ChildProcessOptions options, Process process, StreamWriter? log)
    {
        _options = options;
        _process = process;
        _log = log;
    }

    public string Name => _options.Name;

    /// <summary>Pid of the watchdog wrapper (our direct child).</summary>
    public int WatchdogPid { get; private set; }

    /// <summary>Pid of the program itself, once the watchdog has reported it.</summary>
    public int? Pid { get; private set; }

    /// <summary>Completes with the exit code when the child has exited (128 + signal when killed by one).</summary>
    public Task<int> Exited => _exited.Task;

    public bool HasExited => _exited.Task.IsCompleted;

    /// <summary>
    /// True while the program itself runs, read from /proc: unlike <see cref="HasExited"/> it does not
    /// wait for the end of the output, which orphaned grandchildren (Postgres backends) may hold open.
    /// </summary>
    public bool IsRunning => !HasExited && Pid is { } pid && Posix.IsAlive(pid);

    public DateTimeOffset StartedAt { get; } = DateTimeOffset.UtcNow;

    public static ChildProcess Start(ChildProcessOptions options)
    {
        // setpriv sets the parent-death signal after it changed user (a change of credentials clears it),
        // sh checks the watchdog did not die before that, then execs the program: killing the watchdog
        // can never leave the program running unsupervised.
        var command = new List<string> { "setpriv", "--pdeathsig", Posix.SignalName(options.ParentDeathSignal ?? options.StopSignal) };
        if (options.RunAsUser is { } user && Posix.IsRoot)
            command.AddRange([$"--reuid={user}", $"--regid={user}", "--init-groups"]);
        command.AddRange(["--", "/bin/sh", "-c", Watchdog.ParentCheck, "crm-child"]);
        command.Add(options.FileName);
        command.AddRange(options.Arguments);

        var info = new ProcessStartInfo("setsid")
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = options.WorkingDirectory ?? Environment.CurrentDirectory,
        };
        foreach (var argument in Watchdog.Arguments(options.StopSignal, options.StopTimeout, command))
            info.ArgumentList.Add(argument);
        foreach (var (key, value) in options.Environment)
        {
            if (value is null) info.Environment.Remove(key);
            else info.Environment[key] = value;
        }

        var log = OpenLog(options.LogFile);
        var process = new Process { StartInfo = info };
        var child = new ChildProcess(options, process, log);
        process.OutputDataReceived += (_, e) => child.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => child.OnLine(e.Data);
        try
        {
            process.Start();
        }
        catch (Exception e)
        {
            log?.Dispose();
            throw new InfrastructureException($"Could not start {options.Name} ({options.FileName}): {e.Message}", e);
        }
        child.WatchdogPid = process.Id;
        process.StandardInput.Close(); // the child reads an empty stdin, never our terminal
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _ = child.WatchExitAsync();
        options.Logger?.LogDebug("Started {Name}: {Command} (watchdog pid {Pid})", options.Name, string.Join(' ', command), process.Id);
        return child;
    }

    /// <summary>The last output lines (at most <see cref="ChildProcessOptions.KeptLines"/>).</summary>
    public IReadOnlyList<string> RecentOutput(int max = int.MaxValue)
    {
        lock (_recent) return _recent.Skip(Math.Max(0, _recent.Count - max)).ToArray();
    }

    /// <summary>Waits until the watchdog has reported the program's pid (it does so at once).</summary>
    public Task WaitForPidAsync(CancellationToken ct = default) => _pidKnown.Task.WaitAsync(TimeSpan.FromSeconds(10), ct);

    /// <summary>Sends the stop signal, waits up to <paramref name="timeout"/> (default: the configured one), then kills.</summary>
    public async Task StopAsync(TimeSpan? timeout = null)
    {
        if (HasExited) return;
        Posix.Signal(WatchdogPid, Posix.SIGTERM); // the watchdog forwards it as the configured stop signal
        var wait = timeout ?? _options.StopTimeout;
        if (await Task.WhenAny(Exited, Task.Delay(wait)) != Exited)
        {
            _options.Logger?.LogWarning("{Name} did not stop within {Seconds} s; killing it", Name, wait.TotalSeconds);
            Kill();
        }
        try { await Exited.WaitAsync(TimeSpan.FromSeconds(10)); }
        catch (TimeoutException) { _options.Logger?.LogWarning("{Name} (pid {Pid}) did not exit after SIGKILL", Name, Pid); }
    }

    /// <summary>SIGKILLs the program and its watchdog at once.</summary>
    public void Kill()
    {
        if (Pid is { } pid) Posix.Signal(pid, Posix.SIGKILL);
        if (!HasExited) Posix.Signal(WatchdogPid, Posix.SIGKILL);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _process.Dispose();
    }

    private void OnLine(string? line)
    {
        if (line is null) return;
        if (Pid is null && line.StartsWith(Watchdog.Marker, StringComparison.Ordinal))
        {
            if (int.TryParse(line.AsSpan(Watchdog.Marker.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
                Pid = pid;
            _pidKnown.TrySetResult();
            return;
        }
        lock (_recent)
        {
            _recent.Enqueue(line);
            while (_recent.Count > _options.KeptLines) _recent.Dequeue();
            _log?.WriteLine(line);
        }
        _options.Logger?.LogDebug("[{Name}] {Line}", Name, line);
        _options.OutputReceived?.Invoke(line);
    }

    private async Task WatchExitAsync()
    {
        int code;
        try
        {
            await _process.WaitForExitAsync(); // also waits for the end of the output
            code = _process.ExitCode;
        }
        catch (Exception)
        {
            code = -1;
        }
        lock (_recent) _log?.Dispose();
        _pidKnown.TrySetResult();
        _exited.TrySetResult(code);
    }

    private static StreamWriter? OpenLog(string? path)
    {
        if (path is null) return null;
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var file = new FileInfo(path);
        if (file.Exists && file.Length > 10 * 1024 * 1024) file.MoveTo(path + ".1", overwrite: true);
        var stream = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
        return new StreamWriter(stream) { AutoFlush = true };
    }
}
