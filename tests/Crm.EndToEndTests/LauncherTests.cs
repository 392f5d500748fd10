using System.Diagnostics;
using Crm.Launcher;
using Npgsql;
using StackExchange.Redis;
using Xunit;
using Xunit.Abstractions;

namespace Crm.EndToEndTests;

/// <summary>One infrastructure (databases a and b) shared by the tests of <see cref="LauncherTests"/>.</summary>
public sealed class InfrastructureFixture : IAsyncLifetime
{
    public Infrastructure Infrastructure { get; private set; } = null!;
    public TimeSpan StartTime { get; private set; }

    public async Task InitializeAsync()
    {
        var stopwatch = Stopwatch.StartNew();
        Infrastructure = await Infrastructure.StartAsync(InfrastructureOptions.ForTests("a", "b"));
        StartTime = stopwatch.Elapsed;
    }

    public async Task DisposeAsync() => await Infrastructure.DisposeAsync();
}

public sealed class LauncherTests(InfrastructureFixture fixture, ITestOutputHelper output) : IClassFixture<InfrastructureFixture>
{
    private Infrastructure Infrastructure => fixture.Infrastructure;

    [Fact]
    public async Task Postgres_serves_the_requested_databases()
    {
        output.WriteLine($"infrastructure started in {fixture.StartTime.TotalSeconds:0.0} s");
        foreach (var database in new[] { "a", "b" })
        {
            await using var connection = new NpgsqlConnection(Infrastructure.Postgres!.ConnectionString(database));
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT current_database(), current_setting('max_connections'), current_setting('fsync')", connection);
            await using var reader = await command.ExecuteReaderAsync();
            Assert.True(await reader.ReadAsync());
            Assert.Equal(database, reader.GetString(0));
            Assert.Equal("300", reader.GetString(1));
            Assert.Equal("off", reader.GetString(2)); // ForTests is not durable
        }
        Assert.StartsWith($"Host=127.0.0.1;Port={Infrastructure.Postgres!.Port};Username=postgres;Password=", Infrastructure.Postgres.ConnectionString("a"));
        Assert.EndsWith(";Database=postgres", Infrastructure.Postgres.AdminConnectionString);
    }

    [Fact]
    public async Task Postgres_creates_a_database_on_demand_and_twice_is_fine()
    {
        await Infrastructure.Postgres!.CreateDatabaseAsync("later");
        await Infrastructure.Postgres.CreateDatabaseAsync("later");
        await using var connection = new NpgsqlConnection(Infrastructure.Postgres.ConnectionString("later"));
        await connection.OpenAsync();
        Assert.Equal("later", connection.Database);
    }

    [Fact]
    public async Task Redis_answers_ping_and_keeps_a_value()
    {
        Assert.Equal($"127.0.0.1:{Infrastructure.Redis!.Port}", Infrastructure.Redis.ConnectionString);
        await using var redis = await ConnectionMultiplexer.ConnectAsync(Infrastructure.Redis.ConnectionString);
        var db = redis.GetDatabase();
        await db.PingAsync();
        await db.StringSetAsync("greeting", "hello");
        Assert.Equal("hello", (string?)await db.StringGetAsync("greeting"));
    }

    [Fact]
    public async Task RabbitMq_answers_the_amqp_handshake_and_survives_a_stop_and_start()
    {
        var rabbit = Infrastructure.RabbitMq!;
        Assert.Equal(new Uri($"amqp://guest:guest@127.0.0.1:{rabbit.Port}/"), rabbit.AmqpUri);
        Assert.True(await TestSupport.AmqpHandshakeAsync(rabbit.Port));

        await rabbit.StopAsync();
        Assert.False(await TestSupport.PortAcceptsAsync(rabbit.Port));

        var stopwatch = Stopwatch.StartNew();
        await rabbit.StartAsync();
        output.WriteLine($"rabbitmq restarted in {stopwatch.Elapsed.TotalSeconds:0.0} s");
        Assert.True(await TestSupport.AmqpHandshakeAsync(rabbit.Port));
    }
}

public sealed class LauncherLifecycleTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Dispose_stops_every_process_and_deletes_the_folder()
    {
        var options = InfrastructureOptions.ForTests("x");
        var stopwatch = Stopwatch.StartNew();
        var infrastructure = await Infrastructure.StartAsync(options);
        output.WriteLine($"started in {stopwatch.Elapsed.TotalSeconds:0.0} s");
        int[] pids = [infrastructure.Postgres!.ProcessId!.Value, infrastructure.Redis!.ProcessId!.Value, infrastructure.RabbitMq!.ProcessId!.Value];
        Assert.NotEmpty(TestSupport.ProcessesMentioning(options.DataDirectory));

        stopwatch.Restart();
        await infrastructure.DisposeAsync();
        output.WriteLine($"stopped in {stopwatch.Elapsed.TotalSeconds:0.0} s");

        Assert.Empty(TestSupport.ProcessesMentioning(options.DataDirectory));
        Assert.DoesNotContain(pids, TestSupport.IsAlive);
        Assert.False(Directory.Exists(options.DataDirectory));
    }

    [Fact]
    public async Task A_missing_binary_names_its_Debian_package()
    {
        var options = new InfrastructureOptions
        {
            DataDirectory = Path.Combine(Path.GetTempPath(), "crm-missing-" + Guid.NewGuid().ToString("N")[..8]),
            DeleteDataOnDispose = true,
            StartPostgres = false,
            StartRabbitMq = false,
            RedisServerPath = "/nonexistent/redis-server",
        };
        var error = await Assert.ThrowsAsync<InfrastructureException>(() => Infrastructure.StartAsync(options));
        Assert.Contains("'redis-server'", error.Message);
        Assert.False(Directory.Exists(options.DataDirectory)); // a failed start still cleans up
    }

    [Fact]
    public async Task A_failed_start_shows_the_end_of_the_server_log()
    {
        var folder = Path.Combine(Path.GetTempPath(), "crm-failing-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(folder);
        var fake = Path.Combine(folder, "fake-redis");
        await File.WriteAllTextAsync(fake, "#!/bin/sh\necho 'FATAL: cannot start for a reason'\nexit 3\n");
        File.SetUnixFileMode(fake, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var options = new InfrastructureOptions
        {
            DataDirectory = Path.Combine(folder, "data"),
            StartPostgres = false,
            StartRabbitMq = false,
            RedisServerPath = fake,
        };
        var error = await Assert.ThrowsAsync<InfrastructureException>(() => Infrastructure.StartAsync(options));
        output.WriteLine(error.Message);
        Assert.Contains("exited with code 3", error.Message);
        Assert.Contains("FATAL: cannot start for a reason", error.Message);
        Directory.Delete(folder, recursive: true);
    }
}

/// <summary>SIGKILL the process that runs a Launcher: the watchdogs must stop every server it started.</summary>
public sealed class OrphanTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Servers_do_not_outlive_a_SIGKILLed_owner()
    {
        var folder = Path.Combine(Path.GetTempPath(), "crm-orphan-" + Guid.NewGuid().ToString("N")[..8]);
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { typeof(OrphanTests).Assembly.Location, "launcher-host", folder }) info.ArgumentList.Add(a);
        using var host = Process.Start(info)!;
        var ready = new TaskCompletionSource<string>();
        host.OutputDataReceived += (_, e) => { if (e.Data?.StartsWith("READY", StringComparison.Ordinal) == true) ready.TrySetResult(e.Data); };
        host.ErrorDataReceived += (_, e) => { if (e.Data is not null) output.WriteLine(e.Data); };
        host.BeginOutputReadLine();
        host.BeginErrorReadLine();
        try
        {
            var line = await ready.Task.WaitAsync(TimeSpan.FromSeconds(90));
            var pids = line.Split(' ')[1..].Select(int.Parse).ToArray();
            Assert.All(pids, pid => Assert.True(TestSupport.IsAlive(pid)));

            TestSupport.Signal(host.Id, TestSupport.SIGKILL);
            var stopwatch = Stopwatch.StartNew();
            var clean = await TestSupport.EventuallyAsync(
                () => !pids.Any(TestSupport.IsAlive) && TestSupport.ProcessesMentioning(folder).Count == 0, TimeSpan.FromSeconds(30));
            output.WriteLine($"orphans gone {stopwatch.Elapsed.TotalSeconds:0.0} s after the SIGKILL");
            Assert.True(clean, "left behind:\n" + string.Join('\n', TestSupport.ProcessesMentioning(folder)));
        }
        finally
        {
            if (!host.HasExited) host.Kill();
            await TestSupport.EventuallyAsync(() => TestSupport.ProcessesMentioning(folder).Count == 0, TimeSpan.FromSeconds(30));
            try { Directory.Delete(folder, recursive: true); } catch (IOException) { }
        }
    }
}

/// <summary>A supervised program never runs on without its supervisor: not when its watchdog is SIGKILLed either.</summary>
public sealed class WatchdogTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_program_does_not_outlive_its_SIGKILLed_watchdog()
    {
        await using var child = ChildProcess.Start(new ChildProcessOptions
        {
            Name = "sleeper",
            FileName = "sleep",
            Arguments = ["600"],
            StopSignal = Signals.SIGTERM,
        });
        await child.WaitForPidAsync();
        var pid = child.Pid!.Value;
        Assert.True(TestSupport.IsAlive(pid));
        Assert.Equal(child.WatchdogPid, TestSupport.ParentOf(pid));

        TestSupport.Signal(child.WatchdogPid, TestSupport.SIGKILL);
        var stopwatch = Stopwatch.StartNew();
        Assert.True(await TestSupport.EventuallyAsync(() => !TestSupport.IsAlive(pid), TimeSpan.FromSeconds(5)),
            $"sleep (pid {pid}) still runs after its watchdog was SIGKILLed");
        output.WriteLine($"program gone {stopwatch.Elapsed.TotalMilliseconds:0} ms after its watchdog was SIGKILLed");
        Assert.Equal(128 + TestSupport.SIGKILL, await child.Exited.WaitAsync(TimeSpan.FromSeconds(10)));
    }
}

/// <summary>
/// As root, Postgres runs as postgres and RabbitMQ as rabbitmq: a data folder under a mode-700 parent
/// (a clone in /root) is out of their reach, so the data is kept under /var/lib/crm-suite instead.
/// </summary>
public sealed class DataLocationTests(ITestOutputHelper output)
{
    [Fact]
    public async Task As_root_the_infrastructure_starts_from_a_data_folder_under_a_mode_700_parent()
    {
        if (!Environment.IsPrivilegedProcess)
        {
            output.WriteLine("not root: the servers run as this user and reach any folder it can; nothing to prove");
            return;
        }
        var home = Path.Combine(Path.GetTempPath(), "crm-home700-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(home);
        File.SetUnixFileMode(home, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute); // like /root
        var requested = Path.Combine(home, "clone", ".data");
        var relocated = DataLocation.FallbackFor(requested);
        try
        {
            Assert.Equal(relocated, DataLocation.Resolve(requested));
            Assert.StartsWith("/var/lib/crm-suite/", relocated);
            var reachable = Path.Combine(Path.GetTempPath(), "crm-reachable", ".data");
            Assert.Equal(reachable, DataLocation.Resolve(reachable)); // reachable: kept where asked

            var stopwatch = Stopwatch.StartNew();
            await using (var infrastructure = await Infrastructure.StartAsync(new InfrastructureOptions
            {
                DataDirectory = requested,
                DeleteDataOnDispose = true,
                Durable = false,
                Databases = ["a"],
            }))
            {
                output.WriteLine($"started in {stopwatch.Elapsed.TotalSeconds:0.0} s from {infrastructure.DataDirectory}");
                Assert.Equal(relocated, infrastructure.DataDirectory);
                Assert.Equal(requested + "\n", File.ReadAllText(Path.Combine(relocated, DataLocation.OriginFile)));
                await using (var connection = new NpgsqlConnection(infrastructure.Postgres!.ConnectionString("a")))
                {
                    await connection.OpenAsync();
                    Assert.Equal("a", connection.Database);
                }
                await using (var redis = await ConnectionMultiplexer.ConnectAsync(infrastructure.Redis!.ConnectionString))
                    await redis.GetDatabase().PingAsync();
                Assert.True(await TestSupport.AmqpHandshakeAsync(infrastructure.RabbitMq!.Port));
                Assert.Empty(TestSupport.ProcessesMentioning(home));
            }
            Assert.False(Directory.Exists(relocated));
        }
        finally
        {
            Directory.Delete(home, recursive: true);
            if (Directory.Exists(relocated)) Directory.Delete(relocated, recursive: true);
        }
    }
}

/// <summary><see cref="IServerProcess"/>: a SIGKILLed server is seen at once and comes back on its port with its data.</summary>
public sealed class ServerRestartTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_SIGKILLed_Postgres_and_Redis_come_back_on_the_same_port_with_their_data()
    {
        var options = new InfrastructureOptions
        {
            DataDirectory = Path.Combine(Path.GetTempPath(), "crm-restart-" + Guid.NewGuid().ToString("N")[..8]),
            DeleteDataOnDispose = true,
            Durable = true, // Redis keeps an append-only file; Postgres commits survive its own crash
            StartRabbitMq = false,
            Databases = ["kept"],
        };
        await using var infrastructure = await Infrastructure.StartAsync(options);
        await using (var connection = new NpgsqlConnection(infrastructure.Postgres!.ConnectionString("kept")))
        {
            await connection.OpenAsync();
            await using var create = new NpgsqlCommand("CREATE TABLE t (v int); INSERT INTO t VALUES (42)", connection);
            await create.ExecuteNonQueryAsync();
        }
        await using (var redis = await ConnectionMultiplexer.ConnectAsync(infrastructure.Redis!.ConnectionString))
            await redis.GetDatabase().StringSetAsync("kept", "yes");
        await Task.Delay(1200); // appendfsync everysec

        foreach (var server in infrastructure.Servers)
        {
            var (port, pid) = (server.Port, server.ProcessId!.Value);
            Assert.True(server.IsRunning);
            Assert.True(await server.ProbeAsync());
            TestSupport.Signal(pid, TestSupport.SIGKILL);
            var stopwatch = Stopwatch.StartNew();
            Assert.True(await TestSupport.EventuallyAsync(() => !server.IsRunning, TimeSpan.FromSeconds(2)), $"{server.Name}: SIGKILL not seen");
            var seen = stopwatch.Elapsed;
            Assert.False(await server.ProbeAsync());
            for (var attempt = 1; ; attempt++) // a dead postmaster's backends may hold its shared memory a moment
            {
                try { await server.RestartAsync(); break; }
                catch (InfrastructureException) when (attempt < 5) { await Task.Delay(1000); }
            }
            output.WriteLine($"{server.Name}: SIGKILL seen after {seen.TotalMilliseconds:0} ms, back after {stopwatch.Elapsed.TotalSeconds:0.0} s");
            Assert.True(server.IsRunning);
            Assert.Equal(port, server.Port);
            Assert.NotEqual(pid, server.ProcessId);
            Assert.True(await server.ProbeAsync());
            Assert.False(TestSupport.IsAlive(pid));
        }

        // Unpooled: a pooled connection to the dead postmaster fails once (57P01), as it does in the services.
        await using (var connection = new NpgsqlConnection(infrastructure.Postgres.ConnectionString("kept") + ";Pooling=false"))
        {
            await connection.OpenAsync();
            await using var select = new NpgsqlCommand("SELECT v FROM t", connection);
            Assert.Equal(42, await select.ExecuteScalarAsync());
        }
        await using (var redis = await ConnectionMultiplexer.ConnectAsync(infrastructure.Redis.ConnectionString))
            Assert.Equal("yes", (string?)await redis.GetDatabase().StringGetAsync("kept"));
    }
}
