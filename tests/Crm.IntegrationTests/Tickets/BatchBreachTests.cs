using Crm.IntegrationTests.Loyalty;
using Crm.IntegrationTests.Support;
using Crm.ServiceDefaults.Security;
using Crm.Tickets.V1;
using Dapper;

namespace Crm.IntegrationTests.Tickets;

[Collection(SuiteCollection.Name)]
public class BatchBreachTests(SuiteFixture suite) : ClockedTickets(suite)
{
    /// <summary>
    /// Fifty normal inquiries opened Monday 2028-02-07 10:00 have their first response due at 14:00 (4 business hours).
    /// At 13:40 one pass marks each as near-breach, the next marks nothing. At 14:30 two passes run at once (two
    /// instances): every ticket is breached once, goes from normal to high (one step: escalated once) and to the team's
    /// supervisor queue, and keeps only its resolution target running. A later pass breaches nothing. On the broker
    /// exactly 50 SlaBreached arrive for them, one each, counted once a later marker breach has come through behind them.
    /// </summary>
    [Fact]
    public async Task Fifty_overdue_tickets_are_breached_and_escalated_once_each_with_exactly_fifty_SlaBreached_on_the_broker()
    {
        await using var probe = await EventProbe.StartAsync(Suite.Infrastructure.RabbitMq!.AmqpUri, "Crm.Contracts:SlaBreached");
        var team = "batch-" + Guid.NewGuid().ToString("N")[..8];
        var supervisor = As(Roles.ServiceSupervisor, "sup-" + team, team);
        await supervisor.UpsertQueueAsync(new UpsertQueueRequest { Name = $"{team}-desk", Team = team });
        await supervisor.UpsertQueueAsync(new UpsertQueueRequest { Name = $"{team}-supervisors", Team = team, SupervisorQueue = true });

        SetLocal(2028, 2, 7, 10, 0); // a Monday
        var opened = await Task.WhenAll(Enumerable.Range(1, 50).Select(i => Admin.OpenTicketAsync(new OpenTicketRequest
        {
            CustomerId = Guid.NewGuid().ToString(), Type = TicketType.Inquiry, Channel = Channel.OnlineChat, Priority = Priority.Normal,
            Subject = $"Ring size question {i}", Queue = $"{team}-desk", IdempotencyKey = $"{team}-{i}",
        }).ResponseAsync));
        Assert.All(opened, t => Assert.Equal(Local(2028, 2, 7, 14, 0), t.FirstResponse.DueAt.ToDateTime()));
        var ids = opened.Select(t => Guid.Parse(t.Id)).ToArray();

        SetLocal(2028, 2, 7, 13, 40);
        // Counted in the database, not by this pass: another clocked class's pass over the same database may mark them first.
        await RunSchedulerAsync();
        await using (var marked = await Db.OpenConnectionAsync())
            Assert.Equal(50, await marked.ExecuteScalarAsync<int>(
                "SELECT count(*)::int FROM sla_targets WHERE ticket_id = ANY(@ids) AND target = 1 AND near_breach", new { ids }));
        Assert.Equal(0, (await RunSchedulerAsync()).NearBreaches);

        var position = await Markers.PositionAsync(Db);
        SetLocal(2028, 2, 7, 14, 30);
        var passes = await Task.WhenAll(RunSchedulerAsync(), RunSchedulerAsync());
        Assert.True(passes.Sum(p => p.Breaches) >= 50, $"{passes[0].Breaches} + {passes[1].Breaches} breaches");
        Assert.Equal(0, (await RunSchedulerAsync()).Breaches);

        await using (var connection = await Db.OpenConnectionAsync())
        {
            var rows = (await connection.QueryAsync<(int Priority, string Queue, bool Escalated, DateTime? FrBreachedAt, DateTime? ResBreachedAt)>(
                "SELECT priority, queue, escalated, fr_breached_at, res_breached_at FROM tickets WHERE id = ANY(@ids)", new { ids })).ToList();
            Assert.Equal(50, rows.Count);
            Assert.All(rows, r => Assert.Equal((3, $"{team}-supervisors", true, (DateTime?)Local(2028, 2, 7, 14, 30), (DateTime?)null),
                (r.Priority, r.Queue, r.Escalated, r.FrBreachedAt, r.ResBreachedAt)));
            var running = (await connection.QueryAsync<(Guid TicketId, short Target)>(
                "SELECT ticket_id, target FROM sla_targets WHERE ticket_id = ANY(@ids)", new { ids })).ToList();
            Assert.Equal(50, running.Count);
            Assert.All(running, r => Assert.Equal(2, r.Target)); // only the resolution clock still runs
            // TicketOpened and SlaBreached name their customer in the change feed as change_event_customer reads the payload.
            // Only the rows still there are compared: the change-event pruner, on the same fake clock, may delete them.
            var changes = await connection.QuerySingleAsync<(int All, int Matching)>("""
                SELECT count(*)::int, count(*) FILTER (WHERE customer_id = change_event_customer(payload))::int
                FROM change_events WHERE payload ->> 'ticketId' = ANY(@ticketIds)
                """, new { ticketIds = ids.Select(id => id.ToString()).ToArray() });
            Assert.Equal(changes.All, changes.Matching);
        }

        // The marker: every row written so far is on the broker, then one more breach is caused and waited for.
        await Markers.DrainAsync(Db, position);
        var marker = await Admin.OpenTicketAsync(new OpenTicketRequest
        {
            CustomerId = Guid.NewGuid().ToString(), Type = TicketType.Inquiry, Channel = Channel.Phone, Priority = Priority.Urgent,
            Subject = "Marker", Queue = $"{team}-desk",
        });
        SetLocal(2028, 2, 7, 15, 1); // urgent: first response due 15:00
        Assert.True((await RunSchedulerAsync()).Breaches >= 1);
        await probe.WaitUntilAsync(() => probe.For("ticketId", marker.Id).Count == 1, TimeSpan.FromSeconds(30), "the marker's SlaBreached");

        var ours = opened.Select(t => probe.For("ticketId", t.Id)).ToList();
        Assert.Equal(50, ours.Sum(e => e.Count));
        Assert.All(ours, events =>
        {
            var e = Assert.Single(events).Message;
            Assert.Equal(("first_response", "high", $"{team}-supervisors"),
                (e.GetProperty("target").GetString(), e.GetProperty("newPriority").GetString(), e.GetProperty("escalatedTo").GetString()));
        });
    }
}
