using Crm.Customer.V1;
using Crm.Sales.Activities;
using Crm.Sales.Grpc;
using Crm.Sales.Leads;
using Crm.Sales.Opportunities;
using Crm.Sales.Reports;
using Crm.ServiceDefaults.Security;

namespace Crm.Sales;

/// <summary>Composition of the sales service; tests build the same app on real infrastructure.</summary>
public static class SalesApp
{
    public static WebApplication Build(string[] args, Action<IServiceCollection>? overrides = null)
    {
        Dapper.DefaultTypeMap.MatchNamesWithUnderscores = true;
        var builder = WebApplication.CreateBuilder(args);
        builder.AddServiceDefaults();
        // No parallel workers: the reports over everyone's opportunities were planned with two (once their statements were
        // prepared), and starting them cost more than they saved: forecast for everyone 98-155 ms against 47 ms serial and
        // a 21 ms aggregate scan on 100,000 opportunities (2 cores; bench/NOTES.md, stop 28). Nothing else here scans.
        builder.AddNpgsqlDataSource("salesdb", settings => settings.NoParallelWorkers = true);
        builder.AddDatabaseMigrations(typeof(SalesApp).Assembly);
        builder.AddMessaging("messaging");
        builder.AddGrpcDefaults();
        // The customer service (discovery: services__customer__http__0), called as role system with a deadline per call.
        builder.AddServiceClient<CustomerService.CustomerServiceClient>("customer");

        builder.Services.AddOptions<SalesOptions>().BindConfiguration("Sales");
        builder.Services.AddSingleton(sp => new Pipeline(sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<SalesOptions>>()));
        builder.Services.AddSingleton<LeadRepository>();
        builder.Services.AddSingleton<LeadConversion>();
        builder.Services.AddSingleton<OpportunityRepository>();
        builder.Services.AddSingleton<OrderRecorderSignal>();
        builder.Services.AddSingleton<Receipts>();
        builder.Services.AddSingleton<ParkedOrders>();
        builder.Services.AddSingleton<OrderRecorder>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<OrderRecorder>());
        builder.Services.AddSingleton<ActivityRepository>();
        builder.Services.AddHostedService<ReminderScheduler>();
        builder.Services.AddSingleton<SalesReports>();
        overrides?.Invoke(builder.Services);

        var app = builder.Build();
        _ = app.Services.GetRequiredService<Pipeline>(); // a bad Sales:Stages fails at start, not at the first call
        app.MapGrpcService<SalesGrpcService>();
        app.MapGrpcDefaults();
        app.MapDefaultEndpoints();
        return app;
    }
}
