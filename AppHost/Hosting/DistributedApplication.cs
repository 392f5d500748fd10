using System.Diagnostics;
using System.Runtime.InteropServices;
using Crm.Launcher;
using Microsoft.Extensions.Logging;

namespace Crm.AppHost.Hosting;

/// <summary>
/// Runs the application: dashboard, infrastructure, projects (each after what it waits for),
/// then the resource table and <c>Crm suite is ready.</c>; on Ctrl+C or SIGTERM it stops the
/// projects, then the infrastructure, and exits 0. A second Ctrl+C exits at once (the watchdogs
/// still stop every child).
/// </summary>
public sealed class DistributedApplication
{
    public const string ReadyLine = "Crm suite is ready.";

    private readonly AppHostOptions _options;
    private readonly IReadOnlyList<Resource> _resources;

    internal DistributedApplication(AppHostOptions options, IReadOnlyList<Resource> resources)
    {
        _options = options;
        _resources = resources;
    }

    public static DistributedApplicationBuilder CreateBuilder(string[] args) => new(args);

    public IReadOnlyList<Resource> Resources => _resources;

    public void Run() => Environment.ExitCode = RunAsync().GetAwaiter().GetResult();

    /// <summary>Runs until Ctrl+C / SIGTERM (or <paramref name="ct"/>); returns the exit code.</summary>
    public async Task<int> RunAsync(CancellationToken ct = default)
    {
        using var loggerFactory = LoggerFactory.Create(logging => logging
            .AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; })
            .SetMinimumLevel(LogLevel.Information)
            .AddFilter("Crm.Launcher", LogLevel.Information));
        var logger = loggerFactory.CreateLogger("Crm.AppHost");
        using var shutdown = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => OnSignal(c, shutdown, logger));
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => OnSignal(c, shutdown, logger));
        ConsoleOutput.NameWidth = _resources.Max(r => r.Name.Length);

        // The dashboard's OTLP receiver; the services export to it unless an outside endpoint is configured.
        var telemetry = new Otlp.TelemetryStore(_options.TelemetryLimits);
        await using var otlp = new Otlp.OtlpReceiver(telemetry);
        await otlp.StartAsync();
        var options = _options.OtlpEndpoint is null
            ? _options with { OtlpEndpoint = _options.OtlpProtocol == "http/protobuf" ? otlp.HttpEndpoint : otlp.GrpcEndpoint }
            : _options;
        var projects = _resources.OfType<ProjectResource>().Select(p => new ProjectSupervisor(p, options, logger, Http)).ToList();
        var missing = projects.Where(p => !File.Exists(p.DllPath)).Select(p => p.DllPath).ToList();
        if (missing.Count > 0)
        {
            logger.LogError("Not built: {Dlls}. Build first: dotnet build AppHost -c {Configuration}", string.Join(", ", missing), _options.BuildConfiguration);
            return 1;
        }

        var token = _options.DashboardToken ?? Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
        await using var dashboard = new Dashboard(_resources, logger, telemetry, projects, options, token);
        await dashboard.StartAsync(_options.DashboardUrl);
        logger.LogInformation("Dashboard: {Url}", dashboard.LoginUrl);
        logger.LogInformation("OTLP: {Grpc} (gRPC), {Http} (HTTP/protobuf); the services export to {Endpoint}",
            otlp.GrpcEndpoint, otlp.HttpEndpoint, options.OtlpEndpoint);
        if (_options.DataRelocated)
        {
            DataLocation.Prepare(_options.DataDirectory, _options.RequestedDataDirectory);
            logger.LogWarning("Data: {Folder} ({Requested} cannot be reached by the users postgres and rabbitmq run as, " +
                "e.g. a clone in /root; the same folder is used on every run of this clone)", _options.DataDirectory, _options.RequestedDataDirectory);
        }
        else logger.LogInformation("Data: {Folder}{Ephemeral}", _options.DataDirectory, _options.Ephemeral ? " (ephemeral)" : "");
        if (_options.OwnerPid is { } owner) _ = StopWhenGoneAsync(owner, shutdown, logger);

        var infrastructure = new InfrastructureHost(_options, _resources, logger);
        var exitCode = 0;
        try
        {
            var stopwatch = Stopwatch.StartNew();
            await infrastructure.StartAsync(shutdown.Token);
            foreach (var project in _resources.OfType<ProjectResource>())
            {
                (project.HttpPort, project.WebPort, project.ManagementPort) = (Ports.GetFree(), Ports.GetFree(), Ports.GetFree());
                project.SetEndpoint("http", project.HttpUrl);
                project.SetEndpoint("web", project.WebUrl);
                project.SetEndpoint("health", project.HealthUrl);
            }
            projects.ForEach(p => p.Start());

            await Task.WhenAll(_resources.Select(r => r.WhenReady)).WaitAsync(shutdown.Token);
            SuiteAddresses.Write(_options.DataDirectory, _resources.OfType<ProjectResource>()); // for ./crm import and other tools
            ConsoleOutput.WriteLines([
                "", .. ConsoleTable.Render(_resources), "",
                $"Dashboard: {dashboard.LoginUrl}",
                $"Data: {_options.DataDirectory}{(_options.Ephemeral ? " (ephemeral)" : "")}{(_options.DataRelocated ? $" (for {_options.RequestedDataDirectory}, which postgres and rabbitmq cannot reach)" : "")}",
                $"Started in {stopwatch.Elapsed.TotalSeconds:0.0} s. Press Ctrl+C to stop.",
                ReadyLine, "",
            ]);
            await Task.Delay(Timeout.Infinite, shutdown.Token);
        }
        catch (OperationCanceledException) when (shutdown.IsCancellationRequested) { }
        catch (InfrastructureException e)
        {
            logger.LogError("{Message}", e.Message);
            exitCode = 1;
        }
        catch (Exception e)
        {
            logger.LogError(e, "The AppHost failed");
            exitCode = 1;
        }

        logger.LogInformation("Stopping");
        SuiteAddresses.Delete(_options.DataDirectory);
        await Task.WhenAll(projects.Select(p => p.StopAsync()));
        await infrastructure.DisposeAsync();
        if (_options.Ephemeral) DeleteFolder(_options.DataDirectory, logger); // logs, and all of it when no server was ours
        logger.LogInformation("Stopped");
        return exitCode;
    }

    private static void DeleteFolder(string folder, ILogger logger)
    {
        try
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            logger.LogWarning("Could not delete {Folder}: {Reason}", folder, e.Message);
        }
    }

    /// <summary>
    /// Stops the suite when <paramref name="pid"/> is gone: <c>./crm run</c> runs us under <c>dotnet run</c>,
    /// and a SIGKILLed <c>dotnet run</c> must not leave the suite running with nobody to press Ctrl+C.
    /// </summary>
    private static async Task StopWhenGoneAsync(int pid, CancellationTokenSource shutdown, ILogger logger)
    {
        try
        {
            while (Signals.IsAlive(pid)) await Task.Delay(TimeSpan.FromSeconds(1), shutdown.Token);
            logger.LogWarning("The owner process {Pid} is gone: shutting down", pid);
            await shutdown.CancelAsync();
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException) { }
    }

    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(5) };
    private static long _firstSignal;

    private static void OnSignal(PosixSignalContext context, CancellationTokenSource shutdown, ILogger logger)
    {
        context.Cancel = true; // we stop in order ourselves
        var now = Environment.TickCount64;
        if (Interlocked.CompareExchange(ref _firstSignal, now, 0) == 0)
        {
            logger.LogInformation("{Signal} received: shutting down (again to exit at once)", context.Signal);
            shutdown.Cancel();
        }
        else if (now - Interlocked.Read(ref _firstSignal) > 1000) // tools like timeout signal the process and its group: one stop
        {
            logger.LogWarning("Exiting at once; the watchdogs stop the remaining children");
            Environment.Exit(130);
        }
    }
}
