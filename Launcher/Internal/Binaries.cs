namespace Crm.Launcher.Internal;

/// <summary>Where the Debian packages put the server programs; a clear message when one is missing.</summary>
internal static class Binaries
{
    public static string PostgresBin(string? configured)
    {
        if (configured is not null)
            return File.Exists(Path.Combine(configured, "postgres")) ? configured : throw Missing("PostgreSQL", Path.Combine(configured, "postgres"), "postgresql");
        const string preferred = "/usr/lib/postgresql/15/bin";
        if (File.Exists(Path.Combine(preferred, "postgres"))) return preferred;
        var other = Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin"))
                .Where(d => File.Exists(Path.Combine(d, "postgres"))).OrderDescending().FirstOrDefault()
            : null;
        return other ?? throw Missing("PostgreSQL", "/usr/lib/postgresql/15/bin/postgres", "postgresql");
    }

    public static string Redis(string? configured) => Require(configured ?? "/usr/bin/redis-server", "Redis", "redis-server");
    public static string RabbitMq(string? configured) => Require(configured ?? "/usr/lib/rabbitmq/bin/rabbitmq-server", "RabbitMQ", "rabbitmq-server");
    public static string Epmd() => Require("/usr/bin/epmd", "Erlang's epmd (needed by RabbitMQ)", "rabbitmq-server");

    private static string Require(string path, string what, string package) =>
        File.Exists(path) ? path : throw Missing(what, path, package);

    private static InfrastructureException Missing(string what, string path, string package) =>
        new($"{what} is not installed: {path} was not found. Install the Debian package '{package}' (apt-get install -y {package}).");
}
