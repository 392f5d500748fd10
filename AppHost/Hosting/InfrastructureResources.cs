using Npgsql;

namespace Crm.AppHost.Hosting;

/// <summary>Environment variable names the way Aspire writes them: CUSTOMERDB_HOST, MESSAGING_URI, ...</summary>
internal static class EnvName
{
    public static string Of(string resource, string suffix) => $"{resource.ToUpperInvariant().Replace('-', '_')}_{suffix}";
}

/// <summary>A Postgres server (ours, or the one named by ConnectionStrings:&lt;name&gt;).</summary>
public sealed class PostgresServerResource(string name) : Resource(name), IResourceWithEnvironmentContract
{
    public override string Type => "Postgres";
    public List<PostgresDatabaseResource> Databases { get; } = [];
    public string Host { get; set; } = "127.0.0.1";
    public int Port { get; set; }
    public string Username { get; set; } = "postgres";
    public string Password { get; set; } = "";

    public string ConnectionString(string? database = null)
    {
        var builder = new NpgsqlConnectionStringBuilder { Host = Host, Port = Port, Username = Username, Password = Password };
        if (database is not null) builder.Database = database;
        return builder.ConnectionString;
    }

    public void AddReferenceEnvironment(IDictionary<string, string?> environment) => Add(environment, Name, null);

    internal void Add(IDictionary<string, string?> env, string name, string? database)
    {
        env[$"ConnectionStrings__{name}"] = ConnectionString(database);
        env[EnvName.Of(name, "HOST")] = Host;
        env[EnvName.Of(name, "PORT")] = Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        env[EnvName.Of(name, "USERNAME")] = Username;
        env[EnvName.Of(name, "PASSWORD")] = Password;
        var path = database is null ? "" : "/" + database;
        env[EnvName.Of(name, "URI")] = $"postgresql://{Uri.EscapeDataString(Username)}:{Uri.EscapeDataString(Password)}@{Host}:{Port}{path}";
        env[EnvName.Of(name, "JDBCCONNECTIONSTRING")] = $"jdbc:postgresql://{Host}:{Port}{path}";
        if (database is not null) env[EnvName.Of(name, "DATABASENAME")] = database;
    }
}

/// <summary>One database of a Postgres server; created when missing.</summary>
public sealed class PostgresDatabaseResource(string name, PostgresServerResource server, string databaseName)
    : Resource(name), IResourceWithEnvironmentContract
{
    public override string Type => "PostgresDatabase";
    public PostgresServerResource Server { get; } = server;
    public string DatabaseName { get; } = databaseName;

    public void AddReferenceEnvironment(IDictionary<string, string?> environment) => Server.Add(environment, Name, DatabaseName);
}

/// <summary>A Redis server; its connection string is StackExchange.Redis' <c>host:port[,options]</c>.</summary>
public sealed class RedisResource(string name) : Resource(name), IResourceWithEnvironmentContract
{
    public override string Type => "Redis";
    public string ConnectionString { get; set; } = "";
    public string Host { get; set; } = "127.0.0.1";
    public int Port { get; set; }

    public void AddReferenceEnvironment(IDictionary<string, string?> env)
    {
        env[$"ConnectionStrings__{Name}"] = ConnectionString;
        env[EnvName.Of(Name, "HOST")] = Host;
        env[EnvName.Of(Name, "PORT")] = Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        env[EnvName.Of(Name, "URI")] = $"redis://{Host}:{Port}";
    }
}

/// <summary>A RabbitMQ broker; its connection string is an <c>amqp://</c> URI.</summary>
public sealed class RabbitMQResource(string name) : Resource(name), IResourceWithEnvironmentContract
{
    public override string Type => "RabbitMQ";
    public Uri Uri { get; set; } = new("amqp://guest:guest@127.0.0.1:5672/");

    public void AddReferenceEnvironment(IDictionary<string, string?> env)
    {
        var user = Uri.UserInfo.Split(':', 2);
        env[$"ConnectionStrings__{Name}"] = Uri.ToString();
        env[EnvName.Of(Name, "HOST")] = Uri.Host;
        env[EnvName.Of(Name, "PORT")] = Uri.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        env[EnvName.Of(Name, "USERNAME")] = Uri.UnescapeDataString(user[0]);
        env[EnvName.Of(Name, "PASSWORD")] = user.Length > 1 ? Uri.UnescapeDataString(user[1]) : "";
        env[EnvName.Of(Name, "URI")] = Uri.ToString();
    }
}
