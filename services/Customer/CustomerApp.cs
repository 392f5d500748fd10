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
        // No session state is ever left on a pooled connection here (no SET, temp tables, cursors or held advisory
        // locks), so Npgsql's reset on close — seven statements sent ahead of the next command on every checkout — is
        // pure cost: about a third of Postgres' CPU per GetCustomer (bench/NOTES.md). A connection string that says
        // otherwise wins. The import's binary COPYs send about 1.7 KB per order: with Npgsql's 8 KB write buffer that is a
        // socket write (and a wake-up of the Postgres backend) every five orders; 64 KB sends the same bytes in an eighth of the writes.
        builder.AddNpgsqlDataSource("customerdb", s =>
        {
            if (s.ConnectionString is not { } cs) return;
            s.ConnectionString = WithDefault(WithDefault(cs, "Reset On Close", "No Reset On Close=true"), "Write Buffer Size", "Write Buffer Size=65536");
        });
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

    /// <summary>The connection string with <paramref name="setting"/> added, unless it already names <paramref name="keyword"/>.</summary>
    private static string WithDefault(string connectionString, string keyword, string setting) =>
        connectionString.Contains(keyword, StringComparison.OrdinalIgnoreCase) ? connectionString : connectionString.TrimEnd(';') + ";" + setting;
}
