using Crm.Messaging;
using Crm.Messaging.Admin;
using Crm.Messaging.Parking;
using Crm.Messaging.Webhooks;
using MassTransit;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace Microsoft.Extensions.Hosting;

public static class MessagingExtensions
{
    /// <summary>
    /// MassTransit on RabbitMQ from <c>ConnectionStrings:&lt;connectionName&gt;</c> (an amqp:// URI), plus the
    /// transactional outbox (table, writer, relay), the inbox, parked messages and their sweeper in this service's
    /// database, the messaging health check and, in a web app, the crm.ops.v1.MessagingAdmin gRPC service (mapped by
    /// MapDefaultEndpoints). Queues are named after the service (<c>loyalty-order-paid</c>), so each service gets its
    /// own copy of an event. Settings: <c>Outbox</c>, <c>ChangeFeed</c>, <c>Messaging:Consumer</c>, <c>Messaging:Parking</c>,
    /// <c>Messaging:Inbox</c>.
    /// </summary>
    public static void AddMessaging(this IHostApplicationBuilder builder, string connectionName,
        Action<IBusRegistrationConfigurator>? configureConsumers = null)
    {
        var uri = builder.Configuration.GetConnectionString(connectionName)
            ?? throw new InvalidOperationException(
                $"No connection string for '{connectionName}': set ConnectionStrings__{connectionName} to an amqp:// URI (the AppHost does).");
        var amqp = new Uri(uri);
        var serviceName = builder.Configuration["OTEL_SERVICE_NAME"] ?? builder.Environment.ApplicationName;
        // First, so the migrations (a hosted service that finishes before the next one starts) run before the relay and sweeper.
        builder.AddDatabaseMigrations(typeof(Outbox).Assembly);

        builder.Services.AddMassTransit(bus =>
        {
            // MassTransit 8.5 reports usage to an outside host unless told not to (MASSTRANSIT_USAGE_TELEMETRY=false does the same).
            bus.DisableUsageTelemetry();
            bus.SetEndpointNameFormatter(new KebabCaseEndpointNameFormatter(serviceName, includeNamespace: false));
            configureConsumers?.Invoke(bus);
            // InboxConsumer retries, parks and sweeps back by itself and only throws when its endpoint stops (the message
            // then stays on the queue). This policy is for any other consumer.
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
        // A consumer waiting out a database outage is cancelled this long after stop begins; its message stays queued.
        builder.Services.AddOptions<MassTransitHostOptions>().Configure(o => o.ConsumerStopTimeout ??= TimeSpan.FromSeconds(5));

        builder.Services.AddSingleton<OutboxSignal>();
        builder.Services.AddSingleton<Outbox>();
        builder.Services.AddOptions<OutboxOptions>().BindConfiguration("Outbox");
        builder.Services.AddSingleton<OutboxDataSource>();
        builder.Services.AddSingleton<MessagingStats>();
        builder.Services.AddHostedService<OutboxRelay>();

        builder.Services.AddOptions<ConsumerRetryOptions>().BindConfiguration("Messaging:Consumer");
        builder.Services.AddOptions<ParkingOptions>().BindConfiguration("Messaging:Parking")
            .Validate(o => o.FirstDelay > TimeSpan.Zero && o.MaxDelay >= o.FirstDelay && o.MaxAttempts >= 1 && o.BatchSize >= 1,
                "Messaging:Parking needs FirstDelay > 0, MaxDelay >= FirstDelay, MaxAttempts >= 1, BatchSize >= 1.")
            .ValidateOnStart();
        builder.Services.AddSingleton<ParkingSignal>();
        builder.Services.AddSingleton<ParkedMessages>();
        builder.Services.AddHostedService<ParkedMessageSweeper>();

        builder.Services.AddOptions<InboxOptions>().BindConfiguration("Messaging:Inbox");
        builder.Services.AddSingleton<IValidateOptions<InboxOptions>, InboxRetentionValidation>();
        builder.Services.AddOptions<InboxOptions>().ValidateOnStart();
        builder.Services.AddHostedService<InboxPruner>();

        builder.Services.AddHealthChecks().AddCheck<MessagingHealthCheck>("messaging", tags: ["ready"]);
        builder.Services.AddSingleton(new DefaultEndpoints(endpoints => endpoints.MapGrpcService<MessagingAdminService>()));
        // Partners read the service's committed events back, in order and resumable (fed from the outbox).
        builder.Services.AddOptions<Crm.Messaging.ChangeFeed.ChangeFeedOptions>().BindConfiguration("ChangeFeed");
        builder.Services.AddSingleton<Crm.Messaging.ChangeFeed.ChangeNotifications>();
        builder.Services.AddSingleton(new DefaultEndpoints(endpoints => endpoints.MapGrpcService<Crm.Messaging.ChangeFeed.ChangeFeedService>()));

        // Signed webhooks over the same change events, and the pruning of those events (Messaging/Webhooks).
        builder.Services.AddWebhooks();

        if (builder.ExportsTelemetry()) // as ServiceDefaults: nothing is instrumented for nobody
            builder.Services.AddOpenTelemetry()
                .WithMetrics(metrics => metrics.AddMeter("MassTransit", OutboxRelay.MeterName, MessagingStats.MeterName))
                .WithTracing(tracing => tracing.AddSource("MassTransit", OutboxRelay.MeterName));
    }

    /// <summary>The inbox must remember a message id for longer than the message can keep coming back.</summary>
    private sealed class InboxRetentionValidation(IOptions<ParkingOptions> parking) : IValidateOptions<InboxOptions>
    {
        public ValidateOptionsResult Validate(string? name, InboxOptions options)
        {
            var horizon = parking.Value.Horizon();
            return options.Retention > horizon + TimeSpan.FromHours(1)
                ? ValidateOptionsResult.Success
                : ValidateOptionsResult.Fail(
                    $"Messaging:Inbox:Retention ({options.Retention}) must exceed the parking horizon ({horizon}) by at least an hour.");
        }
    }
}
