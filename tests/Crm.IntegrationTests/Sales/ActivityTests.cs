using Crm.IntegrationTests.Loyalty;
using Crm.IntegrationTests.Support;
using Crm.Sales.V1;
using Dapper;
using Google.Protobuf.WellKnownTypes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace Crm.IntegrationTests.Sales;

[Collection(SuiteCollection.Name)]
public class ActivityTests(SuiteFixture suite)
{
    private static readonly TimeSpan Shanghai = TimeSpan.FromHours(8);

    private static Timestamp Local(DateOnly day, int hour) =>
        Timestamp.FromDateTimeOffset(new DateTimeOffset(day.ToDateTime(new TimeOnly(hour, 0)), Shanghai));

    [Fact]
    public async Task Agenda_by_day_and_week_in_the_brands_time_zone()
    {
        var rep = new SalesDriver(suite.Sales, suite.Customer);
        var customer = await rep.NewCustomerAsync();
        // A Wednesday a few weeks ahead; its week runs Monday to Sunday.
        var wednesday = DateOnly.FromDateTime(DateTime.UtcNow.AddDays(21));
        wednesday = wednesday.AddDays(((int)DayOfWeek.Wednesday - (int)wednesday.DayOfWeek + 7) % 7);
        async Task Add(string subject, DateOnly day, int hour) => await rep.Client.CreateActivityAsync(new CreateActivityRequest
            { Kind = ActivityKind.Meeting, Subject = subject, CustomerId = customer, DueAt = Local(day, hour) });
        await Add("Monday fitting", wednesday.AddDays(-2), 10);
        await Add("Wednesday design review", wednesday, 15);
        await Add("Wednesday 23:30 call", wednesday, 23);          // 15:30 UTC: still Wednesday in Shanghai
        await Add("Next Monday delivery", wednesday.AddDays(5), 0); // Sunday 16:00 UTC: already next week in Shanghai

        var date = new Google.Type.Date { Year = wednesday.Year, Month = wednesday.Month, Day = wednesday.Day };
        var day = await rep.Client.ListAgendaAsync(new ListAgendaRequest { Day = date, Span = AgendaSpan.Day });
        Assert.Equal(["Wednesday design review", "Wednesday 23:30 call"], day.Activities.Select(a => a.Subject));
        var week = await rep.Client.ListAgendaAsync(new ListAgendaRequest { Day = date, Span = AgendaSpan.Week, PageSize = 2 });
        var rest = await rep.Client.ListAgendaAsync(new ListAgendaRequest { Day = date, Span = AgendaSpan.Week, PageToken = week.NextPageToken });
        Assert.Equal(["Monday fitting", "Wednesday design review", "Wednesday 23:30 call"], week.Activities.Concat(rest.Activities).Select(a => a.Subject));
    }

    [Fact]
    public async Task Search_finds_Chinese_and_English_text_by_substring_through_the_trigram_index()
    {
        var rep = new SalesDriver(suite.Sales, suite.Customer);
        var customer = await rep.NewCustomerAsync();
        var note = await rep.Client.CreateActivityAsync(new CreateActivityRequest
        {
            Kind = ActivityKind.Call, Subject = "回访：婚戒定制", CustomerId = customer,
            Body = "客户想定制一枚铂金钻戒，主石1克拉，预算三万。Prefers PLATINUM over gold.",
        });
        await rep.Client.CreateActivityAsync(new CreateActivityRequest { Kind = ActivityKind.Note, Subject = "翡翠手镯询价", CustomerId = customer });

        async Task<IReadOnlyList<string>> Find(string query) =>
            (await rep.Client.SearchActivitiesAsync(new SearchActivitiesRequest { Query = query, CustomerId = customer })).Activities.Select(a => a.Id).ToList();
        Assert.Equal([note.Id], await Find("钻戒"));
        Assert.Equal([note.Id], await Find("婚戒"));
        Assert.Equal([note.Id], await Find("platinum"));
        Assert.Equal(2, (await Find("定")).Count + (await Find("手镯")).Count);
        Assert.Empty(await Find("红宝石"));
        Assert.Empty(await Find("%"));

        // Another salesperson's search does not see these.
        var other = new SalesDriver(suite.Sales, suite.Customer);
        Assert.Empty((await other.Client.SearchActivitiesAsync(new SearchActivitiesRequest { Query = "钻戒" })).Activities);

        // The planner can use the GIN trigram index for a Chinese query (with sequential scans off, as on a large table).
        await using var connection = await suite.SalesDb.OpenConnectionAsync();
        await using var tx = await connection.BeginTransactionAsync();
        await connection.ExecuteAsync("SET LOCAL enable_seqscan = off", transaction: tx);
        var plan = string.Join("\n", await connection.QueryAsync<string>("EXPLAIN SELECT id FROM activities WHERE search_key LIKE @p",
            new { p = "%" + Crm.Sales.Activities.SearchKey.Encode("钻戒") + "%" }, tx));
        Assert.Contains("activities_search", plan);
    }

    /// <summary>
    /// A sales instance of its own on a fake clock: a task due at 10:00 is not reminded at 09:59 (a marker task already due
    /// is reminded in the same round and arrives first), is reminded once at 10:00, and not again (a later marker, written
    /// after every earlier outbox row was confirmed, arrives without a second one).
    /// </summary>
    [Fact]
    public async Task A_task_reminder_fires_once_at_its_due_time_not_before_and_not_twice()
    {
        var start = DateTimeOffset.UtcNow;
        var clock = new FakeTimeProvider(start);
        await using var db = Npgsql.NpgsqlDataSource.Create(suite.Infrastructure.Postgres!.ConnectionString("salesclockdb"));
        await using var sales = await ServiceHost.StartAsync(args => Crm.Sales.SalesApp.Build(args, services => services.AddSingleton<TimeProvider>(clock)),
            suite.Infrastructure, "sales-clock", "salesclockdb", connectionName: "salesdb",
            extraArgs: [$"--services:customer:http:0={suite.Customer.GrpcAddress}", "--Sales:ReminderPollInterval=00:00:00.100"]);
        await using var probe = await EventProbe.StartAsync(suite.Infrastructure.RabbitMq!.AmqpUri, "Crm.Contracts:TaskDue");
        var position = await Markers.PositionAsync(db);
        var rep = new SalesDriver(sales, suite.Customer);
        var customer = Guid.NewGuid().ToString();
        async Task<Activity> Task(string subject, DateTimeOffset due) => await rep.Client.CreateActivityAsync(new CreateActivityRequest
            { Kind = ActivityKind.Task, Subject = subject, CustomerId = customer, DueAt = Timestamp.FromDateTimeOffset(due) });

        var task = await Task("Call back about the ring size", start.AddHours(1));
        clock.Advance(TimeSpan.FromMinutes(59));
        var before = await Task("marker before", clock.GetUtcNow());
        await probe.WaitUntilAsync(() => probe.For("activityId", before.Id).Count == 1, TimeSpan.FromSeconds(15), "the first marker's TaskDue");
        Assert.Empty(probe.For("activityId", task.Id));

        clock.Advance(TimeSpan.FromMinutes(1));
        await probe.WaitUntilAsync(() => probe.For("activityId", task.Id).Count == 1, TimeSpan.FromSeconds(15), "the task's TaskDue");
        var due = probe.For("activityId", task.Id)[0].Message;
        Assert.Equal((rep.Subject, "task", start.AddHours(1).ToUnixTimeSeconds()),
            (due.GetProperty("ownerId").GetString(), due.GetProperty("kind").GetString(), due.GetProperty("dueAt").GetDateTimeOffset().ToUnixTimeSeconds()));

        clock.Advance(TimeSpan.FromHours(3));
        await Markers.DrainAsync(db, position);
        var after = await Task("marker after", clock.GetUtcNow());
        await probe.WaitUntilAsync(() => probe.For("activityId", after.Id).Count == 1, TimeSpan.FromSeconds(15), "the second marker's TaskDue");
        Assert.Single(probe.For("activityId", task.Id));
        var dueLocal = start.AddHours(1).ToOffset(Shanghai);
        Assert.NotNull((await rep.Client.ListAgendaAsync(new ListAgendaRequest
        {
            Day = new Google.Type.Date { Year = dueLocal.Year, Month = dueLocal.Month, Day = dueLocal.Day }, Span = AgendaSpan.Day,
        })).Activities.Single(a => a.Id == task.Id).RemindedAt);
    }
}
