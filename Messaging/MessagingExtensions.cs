using Crm.ServiceDefaults.Data;
using Crm.Messaging;
using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace Microsoft.Extensions.Hosting;

public static class MessagingExtensions
{
    /// <summary>
    /// MassTransit on RabbitMQ from <c>ConnectionStrings:&lt;connectionName&gt;</c> (an amqp:// URI), plus the
    /// transactional outbox (table, writer, relay) and inbox table in this service's database. Queues are
    /// named after the service (<c>loyalty-order-paid</c>), so each service gets its own copy of an event.
    /// </summary>
    public static void AddMessaging(this IHostApplicationBuilder builder, string connectionName,
        Action<IBusRegistrationConfigurator>? configureConsumers = null)
    {
        var uri = builder.Configuration.GetConnectionString(connectionName)
            ?? throw new InvalidOperationException(
                $"No connection string for '{connectionName}': set ConnectionStrings__{connectionName} to an amqp:// URI (the AppHost does).");
        var amqp = new Uri(uri);
        var serviceName = builder.Configuration["OTEL_SERVICE_NAME"] ?? builder.Environment.ApplicationName;

        builder.Services.AddMassTransit(bus =>
        {
            bus.SetEndpointNameFormatter(new KebabCaseEndpointNameFormatter(serviceName, includeNamespace: false));
            configureConsumers?.Invoke(bus);
            bus.AddConfigureEndpointsCallback((_, _, endpoint) =>
                endpoint.UseMessageRetry(r => r.Intervals(100, 500, 1000, 5000, 15000)));
            bus.UsingRabbitMq((context, rabbit) =>
            {
                rabbit.Host(amqp, host =>
                {
                    var userInfo = amqp.UserInfo.Split(':', 2);
                    if (userInfo[0].Length > 0) host.Username(Uri.UnescapeDataString(userInfo[0]));
                    if (userInfo.Length > 1) host.Password(Uri.UnescapeDataString(userInfo[1]));
                });
                rabbit.ConfigureEndpoints(context);
            });
        });

        builder.Services.AddSingleton<OutboxSignal>();
        builder.Services.AddSingleton<Outbox>();
        builder.Services.AddOptions<OutboxOptions>().BindConfiguration("Outbox");
        builder.Services.AddHostedService<OutboxRelay>();
        builder.AddDatabaseMigrations(typeof(Outbox).Assembly);
        builder.Services.AddOpenTelemetry()
            .WithMetrics(metrics => metrics.AddMeter("MassTransit", OutboxRelay.MeterName))
            .WithTracing(tracing => tracing.AddSource("MassTransit", OutboxRelay.MeterName));
    }
}
