using Crm.Tickets.Domain;
using Crm.Tickets.Grpc;
using Crm.Tickets.Sla;
using Microsoft.Extensions.Options;

namespace Crm.Tickets;

/// <summary>Composition of the service-ticket service; tests build the same app on real infrastructure.</summary>
public static class TicketsApp
{
    public static WebApplication Build(string[] args, Action<IServiceCollection>? overrides = null)
    {
        Dapper.DefaultTypeMap.MatchNamesWithUnderscores = true;
        var builder = WebApplication.CreateBuilder(args);
        builder.AddServiceDefaults();
        builder.AddNpgsqlDataSource("ticketsdb");
        builder.AddDatabaseMigrations(typeof(TicketsApp).Assembly);
        builder.AddMessaging("messaging", bus =>
        {
            bus.AddConsumer<OrderPaidConsumer>();
            bus.AddConsumer<TierChangedConsumer>();
        });
        builder.AddGrpcDefaults();

        builder.Services.AddOptions<TicketsOptions>().BindConfiguration("Tickets")
            .Validate(TicketsOptions.IsValid, "Tickets: every priority (low, normal, high, urgent) needs an SLA policy without tiers with " +
                "positive targets, Calendar needs a known TimeZone and WorkStart before WorkEnd (HH:mm), and SchedulerConnections at least 1.")
            .ValidateOnStart();
        builder.Services.AddSingleton(sp => BusinessCalendar.From(sp.GetRequiredService<IOptions<TicketsOptions>>().Value.Calendar));
        builder.Services.AddSingleton<SlaPolicies>();
        builder.Services.AddSingleton<TicketStore>();
        builder.Services.AddSingleton<TicketQueries>();
        builder.Services.AddSingleton<SlaScheduler>();
        builder.Services.AddHostedService<SlaSchedulerService>();
        overrides?.Invoke(builder.Services);

        var app = builder.Build();
        app.MapGrpcService<TicketGrpcService>();
        app.MapGrpcDefaults();
        app.MapDefaultEndpoints();
        return app;
    }
}
