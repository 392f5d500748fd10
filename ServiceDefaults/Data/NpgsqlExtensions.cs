using System.Reflection;
using Crm.ServiceDefaults.Data;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Microsoft.Extensions.Hosting;

public sealed class NpgsqlSettings
{
    public string? ConnectionString { get; set; }
    public bool DisableHealthChecks { get; set; }
    /// <summary>
    /// Plan every statement without parallel workers (max_parallel_workers_per_gather=0). For a service whose largest
    /// scans take tens of milliseconds: on a small machine starting two workers costs more than they save.
    /// </summary>
    public bool NoParallelWorkers { get; set; }
}

/// <summary>
/// Mirrors Aspire.Npgsql: <c>AddNpgsqlDataSource("customerdb")</c> reads <c>ConnectionStrings:customerdb</c>
/// (which wins) or <c>Aspire:Npgsql:ConnectionString</c>, registers an NpgsqlDataSource and a health check.
/// </summary>
public static class NpgsqlExtensions
{
    /// <summary>Used unless the connection string sets Maximum Pool Size.</summary>
    public const int DefaultMaxPoolSize = 20;

    public static void AddNpgsqlDataSource(this IHostApplicationBuilder builder, string connectionName,
        Action<NpgsqlSettings>? configureSettings = null)
    {
        var settings = new NpgsqlSettings();
        builder.Configuration.GetSection("Aspire:Npgsql").Bind(settings);
        if (builder.Configuration.GetConnectionString(connectionName) is { } cs) settings.ConnectionString = cs;
        configureSettings?.Invoke(settings);

        if (string.IsNullOrWhiteSpace(settings.ConnectionString))
            throw new InvalidOperationException(
                $"No connection string for '{connectionName}': set ConnectionStrings__{connectionName} (the AppHost does).");

        var connection = new NpgsqlConnectionStringBuilder(settings.ConnectionString);
        // Npgsql's default of 100 connections lets a burst open 100 concurrent write transactions, which on a small
        // machine costs Postgres twice the CPU per commit and starves the outbox relay (measured in bench/NOTES.md).
        if (!settings.ConnectionString.Contains("Pool Size", StringComparison.OrdinalIgnoreCase)) connection.MaxPoolSize = DefaultMaxPoolSize;
        // Prepare the statements a service repeats (every query here is parameterised), unless configured otherwise.
        if (!settings.ConnectionString.Contains("Auto Prepare", StringComparison.OrdinalIgnoreCase)) connection.MaxAutoPrepare = 32;
        if (settings.NoParallelWorkers) connection.Options = (connection.Options + " -c max_parallel_workers_per_gather=0").Trim();
        builder.Services.AddSingleton(_ => new NpgsqlDataSourceBuilder(connection.ConnectionString) { Name = connectionName }
            // Each command's span also got a "received-first-response" event (a timestamp and an allocation per command)
            // that nothing reads: the span's duration is what the dashboard shows.
            .ConfigureTracing(tracing => tracing.EnableFirstResponseEvent(false))
            .Build());
        if (!settings.DisableHealthChecks)
            builder.Services.AddHealthChecks().AddCheck<NpgsqlHealthCheck>($"postgres:{connectionName}", tags: ["ready"]);
    }

    /// <summary>
    /// Applies the SQL scripts embedded in <paramref name="assembly"/> (and those of shared libraries, such as the
    /// outbox) before the service takes traffic. Scripts run once each, in name order, recorded in schemaversions.
    /// </summary>
    public static void AddDatabaseMigrations(this IHostApplicationBuilder builder, Assembly assembly)
    {
        builder.Services.AddSingleton(new MigrationScripts(assembly));
        if (builder.Services.All(d => d.ImplementationType != typeof(DatabaseMigrator)))
            builder.Services.AddHostedService<DatabaseMigrator>();
    }
}
