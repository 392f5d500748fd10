// The CRM suite: infrastructure, then the services with Aspire's environment contract.
// Run it with `dotnet run --project AppHost`; the ops dashboard is on http://127.0.0.1:18888.
var builder = DistributedApplication.CreateBuilder(args);

var postgres = builder.AddPostgres("postgres");
var cache = builder.AddRedis("cache");
var messaging = builder.AddRabbitMQ("messaging");

var customerdb = postgres.AddDatabase("customerdb");
builder.AddProject("customer", "../services/Customer/Crm.Customer.csproj")
       .WithReference(customerdb).WithReference(cache).WithReference(messaging)
       .WaitFor(customerdb).WaitFor(messaging);

var loyaltydb = postgres.AddDatabase("loyaltydb");
builder.AddProject("loyalty", "../services/Loyalty/Crm.Loyalty.csproj")
       .WithReference(loyaltydb).WithReference(cache).WithReference(messaging)
       .WaitFor(loyaltydb).WaitFor(messaging);

builder.Build().Run();
