using System.Globalization;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Crm.Launcher.Internal;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Crm.Launcher;

/// <summary>
/// A Postgres server in <c>&lt;data&gt;/postgres</c>: cluster in data/, password in password,
/// output in postgres.log. Listens on 127.0.0.1 only (unix socket in the postgres folder),
/// password authentication for user postgres, max_connections 300.
/// </summary>
public sealed partial class PostgresServer : IServerProcess
{
    private const string User = "postgres";
    private readonly InfrastructureOptions _options;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private ChildProcess? _process;

    private PostgresServer(InfrastructureOptions options, ILogger logger, string directory, int port, string password)
    {
        _options = options;
        _logger = logger;
        Folder = directory;
        Port = port;
        Password = password;
    }

    public string Host => "127.0.0.1";
    public int Port { get; }
    public string Username => User;
    public string Password { get; }

    /// <summary>The server's folder (<c>&lt;data&gt;/postgres</c>).</summary>
    public string Folder { get; }

    public string Name => "postgres";

    /// <summary>Pid of the postmaster while it runs.</summary>
    public int? ProcessId => _process is { HasExited: false } p ? p.Pid : null;

    public bool IsRunning => _process is { IsRunning: true };

    public Task WhenExited => _process?.Exited ?? Task.CompletedTask;

    /// <summary><c>SELECT 1</c> on the maintenance database, on a fresh connection (no pool), within 3 s.</summary>
    public async Task<bool> ProbeAsync(CancellationToken ct = default)
    {
        var cs = new NpgsqlConnectionStringBuilder(AdminConnectionString) { Pooling = false, Timeout = 3, CommandTimeout = 3 }.ConnectionString;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(3));
        try
        {
            await using var connection = new NpgsqlConnection(cs);
            await connection.OpenAsync(timeout.Token);
            await using var command = new NpgsqlCommand("SELECT 1", connection);
            return await command.ExecuteScalarAsync(timeout.Token) is 1;
        }
        catch (Exception e) when (e is NpgsqlException or PostgresException or TimeoutException or InvalidOperationException
                                   || (e is OperationCanceledException && !ct.IsCancellationRequested))
        {
            return false;
        }
    }

    /// <summary>
    /// Starts the postmaster again after it died (same port, same cluster: Postgres replays its WAL).
    /// Backends of the dead postmaster exit by themselves; while one still holds the old shared memory
    /// the new postmaster refuses to start, and the caller's next attempt succeeds.
    /// </summary>
    public async Task RestartAsync(CancellationToken ct = default)
    {
        await _gate.WaitAsync(ct);
        try
        {
            if (IsRunning) return;
            _process?.Kill(); // the watchdog, should it still be there
            var data = Path.Combine(Folder, "data");
            await Leftovers.StopAsync(Folder, Posix.SIGINT, ["postgres", "crm-watchdog"], _logger, PostmasterPid(data) is { } old ? [old] : null);
            try
            {
                await RunAsync(Binaries.PostgresBin(_options.PostgresBinDirectory), ct);
            }
            catch
            {
                _process?.Kill();
                throw;
            }
        }
        finally { _gate.Release(); }
    }

    /// <summary>Npgsql connection string for <paramref name="database"/>.</summary>
    public string ConnectionString(string database) =>
        $"Host={Host};Port={Port};Username={Username};Password={Password};Database={database}";

    /// <summary>Connection string for the maintenance database <c>postgres</c>.</summary>
    public string AdminConnectionString => ConnectionString("postgres");

    /// <summary>Creates the database unless it exists.</summary>
    public Task CreateDatabaseAsync(string name) => CreateDatabaseAsync(name, CancellationToken.None);

    public async Task CreateDatabaseAsync(string name, CancellationToken ct)
    {
        await CreateDatabaseAsync(AdminConnectionString, name, ct);
        _logger.LogDebug("Database {Database} is ready", name);
    }

    /// <summary>Creates <paramref name="name"/> on the server of <paramref name="adminConnectionString"/> unless it exists.</summary>
    public static async Task CreateDatabaseAsync(string adminConnectionString, string name, CancellationToken ct = default)
    {
        if (!DatabaseName().IsMatch(name)) throw new ArgumentException($"Not a plain database name: '{name}'", nameof(name));
        var builder = new NpgsqlConnectionStringBuilder(adminConnectionString) { Pooling = false };
        await using var connection = new NpgsqlConnection(builder.ConnectionString);
        await connection.OpenAsync(ct);
        await using (var exists = new NpgsqlCommand("SELECT 1 FROM pg_database WHERE datname = @name", connection))
        {
            exists.Parameters.AddWithValue("name", name);
            if (await exists.ExecuteScalarAsync(ct) is not null) return;
        }
        try
        {
            await using var create = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
            await create.ExecuteNonQueryAsync(ct);
        }
        catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.DuplicateDatabase or PostgresErrorCodes.UniqueViolation)
        {
            // created concurrently by someone else: fine
        }
    }

    internal static async Task<PostgresServer> StartAsync(InfrastructureOptions options, ILogger logger, CancellationToken ct)
    {
        var bin = Binaries.PostgresBin(options.PostgresBinDirectory);
        var directory = Path.Combine(options.DataDirectory, "postgres");
        var data = Path.Combine(directory, "data");
        Directory.CreateDirectory(directory);

        await Leftovers.StopAsync(directory, Posix.SIGINT, ["postgres", "crm-watchdog"], logger, PostmasterPid(data) is { } old ? [old] : null);

        var passwordFile = Path.Combine(directory, "password");
        if (!File.Exists(Path.Combine(data, "PG_VERSION")))
        {
            if (Directory.Exists(data)) Directory.Delete(data, recursive: true); // half-made by a crashed initdb
            File.WriteAllText(passwordFile, RandomPassword());
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(passwordFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            await Commands.ChownAsync(directory, User, ct);
            var initdbArgs = new List<string>
            {
                "-D", data, "-U", User, $"--pwfile={passwordFile}", "--auth=scram-sha-256",
                "-E", "UTF8", "--locale=C", "--no-instructions",
            };
            if (!options.Durable) initdbArgs.Add("--no-sync");
            var (code, output) = await Commands.RunAsync(Path.Combine(bin, "initdb"), initdbArgs, User, directory, ct);
            if (code != 0) throw new InfrastructureException($"initdb failed (exit {code}) in {data}:\n{output}");
        }
        else
        {
            await Commands.ChownAsync(directory, User, ct);
        }
        var password = File.ReadAllText(passwordFile).Trim();

        var portFile = Path.Combine(directory, "port");
        var port = Ports.GetFree(ReadInt(portFile));
        File.WriteAllText(portFile, port.ToString(CultureInfo.InvariantCulture));

        var server = new PostgresServer(options, logger, directory, port, password);
        await server.RunAsync(bin, ct);
        foreach (var database in options.Databases) await server.CreateDatabaseAsync(database, ct);
        return server;
    }

    private async Task RunAsync(string bin, CancellationToken ct)
    {
        var data = Path.Combine(Folder, "data");
        // The unix socket path is limited to 107 bytes; without room for it, TCP only.
        var socketDirectory = Folder.Length + 20 < 107 ? Folder : "";
        var args = new List<string>
        {
            "-D", data, "-p", Port.ToString(CultureInfo.InvariantCulture),
            "-c", "listen_addresses=127.0.0.1",
            "-c", $"unix_socket_directories={socketDirectory}",
            "-c", "max_connections=300",
        };
        if (!_options.Durable)
            args.AddRange(["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]);

        _process = ChildProcess.Start(new ChildProcessOptions
        {
            Name = "postgres",
            FileName = Path.Combine(bin, "postgres"),
            Arguments = args,
            WorkingDirectory = Folder,
            LogFile = Path.Combine(Folder, "postgres.log"),
            RunAsUser = User,
            StopSignal = Posix.SIGINT, // fast shutdown
            StopTimeout = _options.StopTimeout,
            Logger = _logger,
            OutputReceived = _options.OutputReceived is { } output ? line => output("postgres", line) : null,
        });
        await _process.WaitForPidAsync(ct);
        Leftovers.Record(Folder, _process);

        var admin = new NpgsqlConnectionStringBuilder(AdminConnectionString) { Pooling = false, Timeout = 3 }.ConnectionString;
        await Readiness.WaitAsync("postgres", _process, _options.StartTimeout, async token =>
        {
            try
            {
                await using var connection = new NpgsqlConnection(admin);
                await connection.OpenAsync(token);
                return true;
            }
            catch (Exception e) when (e is NpgsqlException or PostgresException or TimeoutException)
            {
                return false;
            }
        }, ct);
        _logger.LogDebug("Postgres accepts connections on 127.0.0.1:{Port}", Port);
    }

    internal async Task StopAsync()
    {
        await _gate.WaitAsync();
        try
        {
            if (_process is null) return;
            await _process.DisposeAsync();
            _process = null;
        }
        finally { _gate.Release(); }
    }

    private static int? PostmasterPid(string data)
    {
        var file = Path.Combine(data, "postmaster.pid");
        try { return File.Exists(file) && int.TryParse(File.ReadLines(file).FirstOrDefault(), out var pid) ? pid : null; }
        catch (IOException) { return null; }
    }

    private static int? ReadInt(string file) =>
        File.Exists(file) && int.TryParse(File.ReadAllText(file).Trim(), out var value) ? value : null;

    private static string RandomPassword()
    {
        const string alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        return RandomNumberGenerator.GetString(alphabet, 24);
    }

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_-]{0,62}$")]
    private static partial Regex DatabaseName();
}
