using Crm.IntegrationTests.Support;
using Crm.Tickets.Sla;
using Crm.Tickets.V1;
using Dapper;
using Google.Rpc;
using Grpc.Core;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Npgsql;

namespace Crm.IntegrationTests.Tickets;

/// <summary>
/// A tickets service of its own (a database per test class, tickets_clock_&lt;class&gt;, so one class's scheduler passes never
/// see another's tickets; queues tickets-clock-*) on a fake clock, so SLA clocks, reopen
/// windows and care-call delays move when a test says. The scheduler's own timer is parked (30 days, the longest it takes); tests run passes
/// themselves. The calendar is the default: Asia/Shanghai, 9:00-18:00 Monday to Friday.
/// </summary>
public abstract class ClockedTickets(SuiteFixture suite) : IAsyncLifetime
{
    protected static readonly TimeSpan Shanghai = TimeSpan.FromHours(8);
    protected readonly SuiteFixture Suite = suite;
    protected readonly FakeTimeProvider Clock = new(DateTimeOffset.UtcNow);
    protected ServiceHost Host = null!;
    protected NpgsqlDataSource Db = null!;
    protected TicketService.TicketServiceClient Admin = null!;

    private string Database => "tickets_clock_" + GetType().Name.ToLowerInvariant();

    public async Task InitializeAsync()
    {
        await Suite.Infrastructure.Postgres!.CreateDatabaseAsync(Database);
        Host = await ServiceHost.StartAsync(
            args => Crm.Tickets.TicketsApp.Build(args, services =>
            {
                services.AddSingleton<TimeProvider>(Clock);
                services.Configure<MassTransitHostOptions>(o => o.WaitUntilStarted = true);
            }),
            Suite.Infrastructure, "tickets-clock", Database, connectionName: "ticketsdb",
            extraArgs: ["--Tickets:SchedulerInterval=30.00:00:00"]);
        Db = NpgsqlDataSource.Create(Suite.Infrastructure.Postgres!.ConnectionString(Database));
        Admin = new TicketService.TicketServiceClient(Host.Channel);
    }

    public async Task DisposeAsync()
    {
        await Host.DisposeAsync();
        await Db.DisposeAsync();
    }

    protected TicketService.TicketServiceClient As(string role, string? subject = null, string? team = null) =>
        new(Host.ChannelFor(role, subject, team));

    protected void SetLocal(int year, int month, int day, int hour, int minute = 0) =>
        Clock.SetUtcNow(new DateTimeOffset(year, month, day, hour, minute, 0, Shanghai));

    protected static DateTime Local(int year, int month, int day, int hour, int minute = 0) =>
        new DateTimeOffset(year, month, day, hour, minute, 0, Shanghai).UtcDateTime;

    protected Task<SchedulerPass> RunSchedulerAsync() => Host.Services.GetRequiredService<SlaScheduler>().RunOnceAsync(CancellationToken.None);

    protected async Task<long> OutboxCountAsync(string type, string ticketId)
    {
        await using var connection = await Db.OpenConnectionAsync();
        return await connection.ExecuteScalarAsync<long>(
            "SELECT count(*) FROM change_events WHERE event_type = @type AND payload->>'ticketId' = @ticketId",
            new { type, ticketId });
    }

    public static string PreconditionType(RpcException ex) =>
        ex.GetRpcStatus()?.GetDetail<PreconditionFailure>()?.Violations.FirstOrDefault()?.Type ?? "";
}
