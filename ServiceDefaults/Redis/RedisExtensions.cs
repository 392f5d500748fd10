using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using StackExchange.Redis;

namespace Microsoft.Extensions.Hosting;

public sealed class RedisSettings
{
    public string? ConnectionString { get; set; }
    public bool DisableHealthChecks { get; set; }
}

/// <summary>
/// Mirrors Aspire.StackExchange.Redis: <c>AddRedisClient("cache")</c> reads <c>ConnectionStrings:cache</c> (which wins)
/// or <c>Aspire:StackExchange:Redis:ConnectionString</c> and registers one shared IConnectionMultiplexer with a health check.
/// </summary>
public static class RedisExtensions
{
    public static void AddRedisClient(this IHostApplicationBuilder builder, string connectionName)
    {
        var settings = new RedisSettings();
        builder.Configuration.GetSection("Aspire:StackExchange:Redis").Bind(settings);
        if (builder.Configuration.GetConnectionString(connectionName) is { } cs) settings.ConnectionString = cs;
        if (string.IsNullOrWhiteSpace(settings.ConnectionString))
            throw new InvalidOperationException(
                $"No connection string for '{connectionName}': set ConnectionStrings__{connectionName} (the AppHost does).");

        var options = ConfigurationOptions.Parse(settings.ConnectionString);
        options.AbortOnConnectFail = false; // keep retrying in the background if Redis starts later
        builder.Services.AddSingleton<IConnectionMultiplexer>(_ => ConnectionMultiplexer.Connect(options));
        if (!settings.DisableHealthChecks)
            builder.Services.AddHealthChecks().AddCheck<RedisHealthCheck>($"redis:{connectionName}", tags: ["ready"]);
    }

    private sealed class RedisHealthCheck(IConnectionMultiplexer redis) : IHealthCheck
    {
        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            try
            {
                await redis.GetDatabase().PingAsync();
                return HealthCheckResult.Healthy();
            }
            catch (Exception ex)
            {
                return new HealthCheckResult(context.Registration.FailureStatus, "Redis is not answering.", ex);
            }
        }
    }
}
