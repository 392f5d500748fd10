using System.Diagnostics;
using System.Globalization;

namespace Crm.Bench.Campaigns;

/// <summary>
/// The campaign service as its own process (the built Crm.Campaigns.dll under `dotnet`, configured as the AppHost would
/// configure it), so its memory is its own: VmRSS sampled every 100 ms while a window is open, VmHWM (the kernel's peak).
/// </summary>
public sealed class ServiceProcess : IAsyncDisposable
{
    private readonly Process _process;
    private long _windowPeakKb;
    private CancellationTokenSource? _sampling;
    private Task _sampler = Task.CompletedTask;

    private ServiceProcess(Process process) => _process = process;

    public int Pid => _process.Id;
    public bool HasExited => _process.HasExited;

    public static ServiceProcess Start(string dll, IReadOnlyDictionary<string, string> environment, IEnumerable<string> args, string logFile)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = Path.GetDirectoryName(dll)!, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        info.ArgumentList.Add(dll);
        foreach (var a in args) info.ArgumentList.Add(a);
        foreach (var (k, v) in environment) info.Environment[k] = v;
        var process = Process.Start(info) ?? throw new InvalidOperationException("Could not start " + dll);
        var log = new StreamWriter(logFile) { AutoFlush = true };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.WriteLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.WriteLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new ServiceProcess(process);
    }

    /// <summary>(VmRSS, VmHWM) in KiB.</summary>
    public (long Rss, long Hwm) Memory()
    {
        long rss = 0, hwm = 0;
        try
        {
            foreach (var line in File.ReadLines($"/proc/{_process.Id}/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal)) rss = Kb(line);
                else if (line.StartsWith("VmHWM:", StringComparison.Ordinal)) hwm = Kb(line);
            }
        }
        catch (IOException) { }
        return (rss, hwm);
    }

    private static long Kb(string line) =>
        long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);

    public void StartWindow()
    {
        _windowPeakKb = 0;
        _sampling = new CancellationTokenSource();
        var token = _sampling.Token;
        _sampler = Task.Run(async () =>
        {
            while (!token.IsCancellationRequested)
            {
                var (rss, _) = Memory();
                if (rss > Interlocked.Read(ref _windowPeakKb)) Interlocked.Exchange(ref _windowPeakKb, rss);
                try { await Task.Delay(100, token); } catch (OperationCanceledException) { }
            }
        });
    }

    /// <summary>The highest VmRSS sampled since <see cref="StartWindow"/>, in KiB.</summary>
    public async Task<long> EndWindowAsync()
    {
        _sampling?.Cancel();
        await _sampler;
        return Math.Max(Interlocked.Read(ref _windowPeakKb), Memory().Rss);
    }

    public async ValueTask DisposeAsync()
    {
        _sampling?.Cancel();
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(10)).Token);
            }
        }
        catch (Exception e) when (e is InvalidOperationException or OperationCanceledException) { }
        _process.Dispose();
    }
}
