using System.Net;
using System.Net.Sockets;
using Crm.Launcher;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Npgsql;

namespace Crm.Bench;

/// <summary>Small pieces every suite's Program needs: ports, the repository root, log lines, channels, Postgres settings.</summary>
public static class BenchHost
{
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public static string FindRepoRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Crm.sln"))) directory = directory.Parent;
        return directory?.FullName ?? throw new InvalidOperationException("Crm.sln not found above " + AppContext.BaseDirectory);
    }

    public static void Log(string message) => Console.WriteLine($"[{DateTime.Now:HH:mm:ss}] {message}");

    /// <summary>Channels to an in-process service over loopback HTTP/2, each call carrying the bench's admin token.</summary>
    public static GrpcChannel[] Channels(Uri address, int connections) =>
        Enumerable.Range(0, connections).Select(_ => GrpcChannel.ForAddress(address, new GrpcChannelOptions
        {
            Credentials = BenchAuth.Credentials(),
            UnsafeUseInsecureChannelCallCredentials = true, // loopback http
            HttpHandler = new SocketsHttpHandler
            {
                EnableMultipleHttp2Connections = true,
                PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
                MeterFactory = LoadClientMeters.Instance,
            },
        })).ToArray();

    /// <summary>The server settings that decide what a write costs, for the results' machine section.</summary>
    public static async Task<Dictionary<string, string>> PostgresSettingsAsync(string connectionString, CancellationToken ct)
    {
        string[] names = ["server_version", "fsync", "synchronous_commit", "full_page_writes", "wal_sync_method", "shared_buffers", "max_connections"];
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(ct);
        var settings = new Dictionary<string, string>();
        foreach (var name in names)
        {
            await using var command = new NpgsqlCommand("SELECT current_setting($1)", connection) { Parameters = { new() { Value = name } } };
            settings[name] = (string)(await command.ExecuteScalarAsync(ct))!;
        }
        return settings;
    }

    /// <summary>Stops an in-process service with 15 s to drain. A failure is printed, not thrown, so the teardown after it
    /// (other services, the infrastructure) still runs.</summary>
    public static async Task StopAsync(WebApplication? app, string what)
    {
        if (app is null) return;
        try
        {
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            await app.StopAsync(stop.Token);
        }
        catch (Exception e) { Console.Error.WriteLine($"Stopping {what}: {e.Message}"); }
        await app.DisposeAsync();
    }

    /// <summary>Processes still running from the bench's data directory after teardown ("pid command line"), printed as
    /// an error when there are any: a leftover Postgres or broker would disturb the next suite's figures.</summary>
    public static List<string> LeftoverProcesses(string dataDirectory)
    {
        var leftovers = ProcessTable.Find(dataDirectory).Select(p => $"{p.Pid} {p.CommandLine}").ToList();
        if (leftovers.Count > 0) Console.Error.WriteLine("Processes left running:\n" + string.Join('\n', leftovers));
        return leftovers;
    }
}
