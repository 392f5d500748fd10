namespace Crm.Launcher;

/// <summary>What <see cref="Infrastructure.StartAsync"/> starts and where it keeps the data.</summary>
public sealed class InfrastructureOptions
{
    /// <summary>Root folder; the servers use the subfolders postgres/, redis/ and rabbitmq/.</summary>
    public required string DataDirectory { get; init; }

    /// <summary>Delete <see cref="DataDirectory"/> on dispose (tests use a throw-away folder).</summary>
    public bool DeleteDataOnDispose { get; init; }

    /// <summary>
    /// False for tests: Postgres runs with fsync, synchronous_commit and full_page_writes off and
    /// Redis without persistence. True keeps data safe across crashes (the AppHost's kept folder).
    /// </summary>
    public bool Durable { get; init; } = true;

    /// <summary>Postgres databases created when missing, e.g. customerdb, loyaltydb.</summary>
    public IReadOnlyList<string> Databases { get; init; } = [];

    public bool StartPostgres { get; init; } = true;
    public bool StartRedis { get; init; } = true;
    public bool StartRabbitMq { get; init; } = true;

    /// <summary>Folder of initdb and postgres; default /usr/lib/postgresql/15/bin (Debian package postgresql).</summary>
    public string? PostgresBinDirectory { get; init; }

    /// <summary>Default /usr/bin/redis-server (Debian package redis-server).</summary>
    public string? RedisServerPath { get; init; }

    /// <summary>Default /usr/lib/rabbitmq/bin/rabbitmq-server (Debian package rabbitmq-server).</summary>
    public string? RabbitMqServerPath { get; init; }

    /// <summary>How long one server may take to accept connections.</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(90);

    /// <summary>How long a server may take to stop after its stop signal before it is killed.</summary>
    public TimeSpan StopTimeout { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Every output line of every server: (server name, line). Also written to the logs.</summary>
    public Action<string, string>? OutputReceived { get; init; }

    /// <summary>The same options with another data folder (see <see cref="DataLocation"/>).</summary>
    public InfrastructureOptions WithDataDirectory(string dataDirectory) => new()
    {
        DataDirectory = dataDirectory,
        DeleteDataOnDispose = DeleteDataOnDispose,
        Durable = Durable,
        Databases = Databases,
        StartPostgres = StartPostgres,
        StartRedis = StartRedis,
        StartRabbitMq = StartRabbitMq,
        PostgresBinDirectory = PostgresBinDirectory,
        RedisServerPath = RedisServerPath,
        RabbitMqServerPath = RabbitMqServerPath,
        StartTimeout = StartTimeout,
        StopTimeout = StopTimeout,
        OutputReceived = OutputReceived,
    };

    /// <summary>
    /// A throw-away folder under the temp directory, deleted on dispose, with durability off.
    /// </summary>
    public static InfrastructureOptions ForTests(params string[] databases) => new()
    {
        DataDirectory = Path.Combine(Path.GetTempPath(), "crm-infra-" + Guid.NewGuid().ToString("N")[..12]),
        DeleteDataOnDispose = true,
        Durable = false,
        Databases = databases,
    };
}
