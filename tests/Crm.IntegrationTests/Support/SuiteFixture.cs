using Crm.Launcher;
using Npgsql;

namespace Crm.IntegrationTests.Support;

/// <summary>
/// One throw-away Postgres, Redis and RabbitMQ for the whole test run, started by the launcher the AppHost
/// uses, and the customer service on top of it. Disposed (processes stopped, folder deleted) at the end,
/// whether the tests passed or not.
/// </summary>
public sealed class SuiteFixture : IAsyncLifetime
{
    public Infrastructure Infrastructure { get; private set; } = null!;
    public ServiceHost Customer { get; private set; } = null!;
    public NpgsqlDataSource CustomerDb { get; private set; } = null!;
    public ServiceHost Loyalty { get; private set; } = null!;
    public NpgsqlDataSource LoyaltyDb { get; private set; } = null!;
    public ServiceHost Sales { get; private set; } = null!;
    public NpgsqlDataSource SalesDb { get; private set; } = null!;
    public ServiceHost Tickets { get; private set; } = null!;
    public NpgsqlDataSource TicketsDb { get; private set; } = null!;
    public ServiceHost Campaigns { get; private set; } = null!;
    public NpgsqlDataSource CampaignsDb { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Infrastructure = await Crm.Launcher.Infrastructure.StartAsync(InfrastructureOptions.ForTests("customerdb", "loyaltydb", "loyaltyclockdb", "inboxtestdb",
            "loyaltyoutagedb", "customerfreezedb", "customerrestartdb", "campaignsdb",
            "salesdb", "salesclockdb", "salesoutagedb",
            "ticketsdb", "ticketsclockdb", "campaignsclockdb", "loyaltyexpirydb"));
        CustomerDb = NpgsqlDataSource.Create(Infrastructure.Postgres!.ConnectionString("customerdb"));
        LoyaltyDb = NpgsqlDataSource.Create(Infrastructure.Postgres!.ConnectionString("loyaltydb"));
        // Loyalty first, so its queues exist before the customer service publishes anything.
        Loyalty = await ServiceHost.StartAsync(args => Crm.Loyalty.LoyaltyApp.Build(args), Infrastructure, "loyalty", "loyaltydb");
        TicketsDb = NpgsqlDataSource.Create(Infrastructure.Postgres!.ConnectionString("ticketsdb"));
        // Tickets before customer too: it consumes OrderPaid (care calls).
        Tickets = await ServiceHost.StartAsync(args => Crm.Tickets.TicketsApp.Build(args), Infrastructure, "tickets", "ticketsdb");
        Customer = await ServiceHost.StartAsync(Crm.Customer.CustomerApp.Build, Infrastructure, "customer", "customerdb");
        SalesDb = NpgsqlDataSource.Create(Infrastructure.Postgres!.ConnectionString("salesdb"));
        // After the customer service: conversions and receipts call it (discovery as the AppHost sets it).
        Sales = await ServiceHost.StartAsync(args => Crm.Sales.SalesApp.Build(args), Infrastructure, "sales", "salesdb",
            extraArgs: [$"--services:customer:http:0={Customer.GrpcAddress}", "--Sales:OrderPollInterval=00:00:00.500"]);
        // Campaigns after Customer (its rebuild calls the customer service at an address known only now), before any test
        // publishes: its bus is started (queues bound) before StartAsync returns.
        CampaignsDb = NpgsqlDataSource.Create(Infrastructure.Postgres!.ConnectionString("campaignsdb"));
        Campaigns = await ServiceHost.StartAsync(
            args => Crm.Campaigns.CampaignsApp.Build(args, s => Microsoft.Extensions.DependencyInjection.OptionsServiceCollectionExtensions.Configure<MassTransit.MassTransitHostOptions>(s, o => o.WaitUntilStarted = true)),
            Infrastructure, "campaigns", "campaignsdb", extraArgs: [$"--services:customer:http:0={Customer.GrpcAddress}",
                $"--services:loyalty:http:0={Loyalty.GrpcAddress}",
                // The shared instance runs on the real clock: no scheduler or quiet hours there (CampaignScheduleTests has its own).
                "--Marketing:Scheduler:Enabled=false", "--Marketing:QuietHoursStart=",
                // The tests count exact sends; the 2 s production deadline on a customer-name lookup defers sends when the whole
                // test run loads the two cores (seen at load average 30). Deferral itself is tested against an unreachable service.
                "--Marketing:CustomerCallTimeout=00:00:30"]);
    }

    public async Task DisposeAsync()
    {
        if (Sales is not null) await Sales.DisposeAsync();
        if (SalesDb is not null) await SalesDb.DisposeAsync();
        if (Campaigns is not null) await Campaigns.DisposeAsync();
        if (CampaignsDb is not null) await CampaignsDb.DisposeAsync();
        if (Customer is not null) await Customer.DisposeAsync();
        if (CustomerDb is not null) await CustomerDb.DisposeAsync();
        if (Loyalty is not null) await Loyalty.DisposeAsync();
        if (LoyaltyDb is not null) await LoyaltyDb.DisposeAsync();
        if (Tickets is not null) await Tickets.DisposeAsync();
        if (TicketsDb is not null) await TicketsDb.DisposeAsync();
        if (Infrastructure is not null) await Infrastructure.DisposeAsync();
    }
}

[CollectionDefinition(Name)]
public sealed class SuiteCollection : ICollectionFixture<SuiteFixture>
{
    public const string Name = "suite";
}
