using Crm.Customer.Customers;
using Crm.Customer.Grpc;
using Crm.Customer.Orders;

namespace Crm.Customer;

/// <summary>Composition of the customer service; tests build the same app on real infrastructure.</summary>
public static class CustomerApp
{
    public static WebApplication Build(string[] args)
    {
        Dapper.DefaultTypeMap.MatchNamesWithUnderscores = true;
        var builder = WebApplication.CreateBuilder(args);
        builder.AddServiceDefaults();
        builder.AddNpgsqlDataSource("customerdb");
        builder.AddDatabaseMigrations(typeof(CustomerApp).Assembly);
        builder.AddMessaging("messaging");
        builder.AddGrpcDefaults();

        builder.Services.AddSingleton<CustomerRepository>();
        builder.Services.AddSingleton<CustomerUpserts>();
        builder.Services.AddSingleton<Grpc.PartnerRequests>();
        builder.Services.AddSingleton<Grpc.PartnerScope>();
        builder.Services.AddSingleton(Grpc.PartnerScope.ChangeScope); // a partner's change feed and webhooks: its customers' events
        builder.Services.AddSingleton<OrderRepository>();

        var app = builder.Build();
        app.MapGrpcService<CustomerGrpcService>();
        app.MapGrpcService<ImportGrpcService>();
        app.MapGrpcDefaults();
        app.MapDefaultEndpoints();
        return app;
    }
}
