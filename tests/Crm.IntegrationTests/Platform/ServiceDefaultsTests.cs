using Crm.IntegrationTests.Support;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using StackExchange.Redis;

namespace Crm.IntegrationTests.Platform;

/// <summary>The Aspire-shaped client one-liners against the real servers.</summary>
[Collection(SuiteCollection.Name)]
public class ServiceDefaultsTests(SuiteFixture suite)
{
    private IHost BuildHost(Dictionary<string, string?> settings, Action<IHostApplicationBuilder> configure)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddHealthChecks();
        configure(builder);
        return builder.Build();
    }

    [Fact]
    public async Task AddRedisClient_reads_the_Aspire_connection_string_and_reports_health()
    {
        using var host = BuildHost(new() { ["ConnectionStrings:cache"] = suite.Infrastructure.Redis!.ConnectionString }, b => b.AddRedisClient("cache"));

        var redis = host.Services.GetRequiredService<IConnectionMultiplexer>().GetDatabase();
        await redis.StringSetAsync("crm:test", "42");
        Assert.Equal("42", (string?)await redis.StringGetAsync("crm:test"));

        var report = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        Assert.Equal(HealthStatus.Healthy, report.Entries["redis:cache"].Status);
    }

    [Fact]
    public async Task A_database_that_is_not_there_makes_the_health_check_unhealthy()
    {
        using var host = BuildHost(new() { ["ConnectionStrings:nodb"] = suite.Infrastructure.Postgres!.ConnectionString("does_not_exist") },
            b => b.AddNpgsqlDataSource("nodb"));

        var report = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        Assert.Equal(HealthStatus.Unhealthy, report.Entries["postgres:nodb"].Status);
        Assert.Equal("Postgres is not answering.", report.Entries["postgres:nodb"].Description);
    }

    [Fact]
    public void A_missing_connection_string_names_the_variable_to_set()
    {
        var ex = Assert.Throws<InvalidOperationException>(() => BuildHost(new(), b => b.AddNpgsqlDataSource("customerdb")));
        Assert.Contains("ConnectionStrings__customerdb", ex.Message);
    }
}
