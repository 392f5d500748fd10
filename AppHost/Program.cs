// The CRM suite: infrastructure, then the services with Aspire's environment contract.
// Run it with `dotnet run --project AppHost`; the ops dashboard is on http://127.0.0.1:18888.
// `token --role <role> [--customer <id>] [--ttl 1h]`: a development token for the running suite (./crm token).
if (args.Length > 0 && args[0] == "token") return Crm.AppHost.DevAuth.TokenCommand(args[1..]);
// `otlp-sink`: only the dashboard's OTLP receiver, for the telemetry benchmark (bench/run.sh telemetry).
if (args.Length > 0 && args[0] == "otlp-sink") return await Crm.AppHost.Otlp.OtlpSinkCommand.RunAsync();

var builder = DistributedApplication.CreateBuilder(args);

var postgres = builder.AddPostgres("postgres");
var cache = builder.AddRedis("cache");
var messaging = builder.AddRabbitMQ("messaging");

var customerdb = postgres.AddDatabase("customerdb");
var customer = builder.AddProject("customer", "../services/Customer/Crm.Customer.csproj")
       .WithReference(customerdb).WithReference(cache).WithReference(messaging)
       .WaitFor(customerdb).WaitFor(messaging)
       .WithDevelopmentAuth().WithWebhookSecretKey();

var loyaltydb = postgres.AddDatabase("loyaltydb");
var loyalty = builder.AddProject("loyalty", "../services/Loyalty/Crm.Loyalty.csproj")
       .WithReference(loyaltydb).WithReference(cache).WithReference(messaging)
       .WaitFor(loyaltydb).WaitFor(messaging)
       .WithDevelopmentAuth().WithWebhookSecretKey();

var salesdb = postgres.AddDatabase("salesdb");
builder.AddProject("sales", "../services/Sales/Crm.Sales.csproj")
       .WithReference(salesdb).WithReference(cache).WithReference(messaging).WithReference(customer)
       .WaitFor(salesdb).WaitFor(messaging).WaitFor(customer)
       .WithDevelopmentAuth().WithWebhookSecretKey();

var ticketsdb = postgres.AddDatabase("ticketsdb");
builder.AddProject("tickets", "../services/Tickets/Crm.Tickets.csproj")
       .WithReference(ticketsdb).WithReference(cache).WithReference(messaging)
       .WaitFor(ticketsdb).WaitFor(messaging)
       .WithDevelopmentAuth().WithWebhookSecretKey();

// Campaigns: the analytics read model (events) and its rebuild from the customer service (discovery: services__customer__http__0);
// a campaign's coupons and the points-expiring reminders' audience from the loyalty service (services__loyalty__http__0).
var campaignsdb = postgres.AddDatabase("campaignsdb");
builder.AddProject("campaigns", "../services/Campaigns/Crm.Campaigns.csproj")
       .WithReference(campaignsdb).WithReference(cache).WithReference(messaging).WithReference(customer)
       .WithReference(loyalty)
       .WaitFor(campaignsdb).WaitFor(messaging)
       .WithDevelopmentAuth().WithWebhookSecretKey();

builder.Build().Run();
return 0;
