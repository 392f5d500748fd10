using Crm.IntegrationTests.Support;
using Crm.ServiceDefaults.Security;
using Crm.Tickets.V1;
using Grpc.Core;

namespace Crm.IntegrationTests.Tickets;

/// <summary>On the suite's tickets service (real clock).</summary>
[Collection(SuiteCollection.Name)]
public class AccessAndSearchTests(SuiteFixture suite, Xunit.Abstractions.ITestOutputHelper output)
{
    private TicketService.TicketServiceClient As(string role, string? subject = null, string? team = null) =>
        new(suite.Tickets.ChannelFor(role, subject, team));

    [Fact]
    public async Task A_member_sees_and_follows_only_its_own_tickets_and_never_internal_notes()
    {
        var me = Guid.NewGuid().ToString();
        var other = Guid.NewGuid().ToString();
        var member = As(Roles.Member, me);
        var agent = As(Roles.Service, "agent-" + Guid.NewGuid().ToString("N")[..8]);

        var mine = await member.OpenTicketAsync(new OpenTicketRequest
        {
            CustomerId = me, Type = TicketType.Complaint, Channel = Channel.App, Subject = "项链扣坏了", Description = "The clasp broke after a week.",
        });
        var theirs = await agent.OpenTicketAsync(new OpenTicketRequest { CustomerId = other, Type = TicketType.Inquiry, Channel = Channel.Phone, Subject = "Hours?" });
        await Rpc.FailsWith(StatusCode.PermissionDenied, () => member.OpenTicketAsync(new OpenTicketRequest
        {
            CustomerId = other, Type = TicketType.Inquiry, Channel = Channel.App, Subject = "Not mine",
        }).ResponseAsync);

        await agent.AddCommentAsync(new AddCommentRequest { TicketId = mine.Id, Visibility = Visibility.Internal, Body = "Supplier batch 7 again — check the others." });
        await agent.AddCommentAsync(new AddCommentRequest { TicketId = mine.Id, Visibility = Visibility.Public, Body = "We are sorry — please bring it to any store." });
        var reply = new AddCommentRequest { TicketId = mine.Id, Body = "OK, tomorrow.", RequestId = Guid.NewGuid().ToString() };
        await member.AddCommentAsync(reply);
        await member.AddCommentAsync(reply); // a retry adds nothing
        await Rpc.FailsWith(StatusCode.PermissionDenied, () => member.AddCommentAsync(new AddCommentRequest
        {
            TicketId = mine.Id, Visibility = Visibility.Internal, Body = "sneaky",
        }).ResponseAsync);

        var seen = await member.GetTicketAsync(new GetTicketRequest { Id = mine.Id });
        Assert.Equal(["We are sorry — please bring it to any store.", "OK, tomorrow."], seen.Comments.Select(c => c.Body));
        Assert.All(seen.Comments, c => Assert.Equal(Visibility.Public, c.Visibility));
        var staffView = await agent.GetTicketAsync(new GetTicketRequest { Id = mine.Id });
        Assert.Equal(3, staffView.Comments.Count);
        Assert.NotNull(staffView.FirstResponse.MetAt); // the public reply answered the customer

        await Rpc.FailsWith(StatusCode.PermissionDenied, () => member.GetTicketAsync(new GetTicketRequest { Id = theirs.Id }).ResponseAsync);
        await Rpc.FailsWith(StatusCode.PermissionDenied, () => member.AddCommentAsync(new AddCommentRequest { TicketId = theirs.Id, Body = "hi" }).ResponseAsync);
        await Rpc.FailsWith(StatusCode.PermissionDenied, () => member.ListCustomerHistoryAsync(new ListCustomerHistoryRequest { CustomerId = other }).ResponseAsync);
        var history = await member.ListCustomerHistoryAsync(new ListCustomerHistoryRequest { CustomerId = me });
        Assert.Equal([mine.Id], history.Tickets.Select(t => t.Id));
    }

    [Fact]
    public async Task Agents_work_their_queues_supervisors_their_team_and_auto_assignment_picks_the_least_loaded_agent()
    {
        var team = "west-" + Guid.NewGuid().ToString("N")[..8];
        var (a1, a2, outsider) = ($"{team}-a1", $"{team}-a2", $"{team}-x");
        var supervisor = As(Roles.ServiceSupervisor, "sup-" + team, team);
        var queue = await supervisor.UpsertQueueAsync(new UpsertQueueRequest { Name = $"{team}-repairs", Team = team, AgentIds = { a2, a1, a1 } });
        Assert.Equal([a1, a2], queue.AgentIds);
        await Rpc.FailsWith(StatusCode.PermissionDenied, () => As(Roles.ServiceSupervisor, "sup-other", "other-team")
            .UpsertQueueAsync(new UpsertQueueRequest { Name = $"{team}-repairs", Team = "other-team" }).ResponseAsync);

        async Task<Ticket> Open() => await As(Roles.Service, a1).OpenTicketAsync(new OpenTicketRequest
        {
            CustomerId = Guid.NewGuid().ToString(), Type = TicketType.AfterSales, Channel = Channel.Store, Subject = "Repair", Queue = $"{team}-repairs",
        });
        // a1 already carries two open tickets, a2 none: auto-assignment picks a2, then (1 vs 2) a2 again, then a tie goes to a1.
        for (var i = 0; i < 2; i++)
            await supervisor.AssignTicketAsync(new AssignTicketRequest { TicketId = (await Open()).Id, AgentId = a1 });
        var picks = new List<string>();
        for (var i = 0; i < 3; i++)
            picks.Add((await supervisor.AssignTicketAsync(new AssignTicketRequest { TicketId = (await Open()).Id, Queue = $"{team}-repairs", AutoAssign = true })).Assignee);
        Assert.Equal([a2, a2, a1], picks);

        var ticket = await Open();
        await Rpc.FailsWith(StatusCode.PermissionDenied, () => As(Roles.Service, outsider)
            .ChangeStateAsync(new ChangeStateRequest { TicketId = ticket.Id, State = TicketState.Acknowledged }).ResponseAsync);
        await Rpc.FailsWith(StatusCode.PermissionDenied, () => As(Roles.ServiceSupervisor, "sup-other", "other-team")
            .ChangeStateAsync(new ChangeStateRequest { TicketId = ticket.Id, State = TicketState.Acknowledged }).ResponseAsync);
        await As(Roles.Service, a2).ChangeStateAsync(new ChangeStateRequest { TicketId = ticket.Id, State = TicketState.Acknowledged });
        await supervisor.ChangeStateAsync(new ChangeStateRequest { TicketId = ticket.Id, State = TicketState.InProgress });
        await Rpc.FailsWith(StatusCode.NotFound, () => supervisor.AssignTicketAsync(new AssignTicketRequest
        {
            TicketId = ticket.Id, Queue = "no-such-queue-" + team, AutoAssign = true,
        }).ResponseAsync);
    }

    [Fact]
    public async Task SearchTickets_finds_Chinese_and_English_keywords_in_tickets_and_comments_with_filters_and_pages()
    {
        var customer = Guid.NewGuid().ToString();
        var tag = "t-" + Guid.NewGuid().ToString("N")[..10];
        var marker = Guid.NewGuid().ToString("N")[..12];
        var agent = As(Roles.Service, "agent-search");
        async Task<Ticket> Open(string subject, string description, TicketType type = TicketType.Inquiry) =>
            await agent.OpenTicketAsync(new OpenTicketRequest
            {
                CustomerId = customer, Type = type, Channel = Channel.OnlineChat, Subject = subject, Description = description, Tags = { tag },
            });
        var ring = await Open("戒指尺寸太小 " + marker, "想换成13号圈口");
        var pearl = await Open("Pearl earrings " + marker, "Lost one PEARL in the shop", TicketType.Complaint);
        var quiet = await Open("Invoice " + marker, "Please send the invoice again");
        await agent.AddCommentAsync(new AddCommentRequest { TicketId = quiet.Id, Body = "客户说发票抬头写错了", Visibility = Visibility.Internal });

        async Task<List<string>> Search(SearchTicketsRequest r) => (await agent.SearchTicketsAsync(r)).Tickets.Select(t => t.Id).ToList();
        Assert.Equal([ring.Id], await Search(new SearchTicketsRequest { Query = "尺寸", CustomerId = customer }));
        Assert.Equal([ring.Id], await Search(new SearchTicketsRequest { Query = "13号", CustomerId = customer }));
        Assert.Equal([quiet.Id], await Search(new SearchTicketsRequest { Query = "发票抬头", CustomerId = customer })); // in a comment
        Assert.Equal([pearl.Id], await Search(new SearchTicketsRequest { Query = "pearl", CustomerId = customer }));
        Assert.Empty(await Search(new SearchTicketsRequest { Query = "l_st", Tag = tag })); // '_' is a character, not a wildcard
        Assert.Empty(await Search(new SearchTicketsRequest { Query = "%", Tag = tag }));

        // Filters and pages: newest first, two pages of 2 and 1.
        var first = await agent.SearchTicketsAsync(new SearchTicketsRequest { Query = marker, Tag = tag, PageSize = 2 });
        Assert.Equal([quiet.Id, pearl.Id], first.Tickets.Select(t => t.Id));
        var second = await agent.SearchTicketsAsync(new SearchTicketsRequest { Query = marker, Tag = tag, PageSize = 2, PageToken = first.NextPageToken });
        Assert.Equal([ring.Id], second.Tickets.Select(t => t.Id));
        Assert.Equal("", second.NextPageToken);
        var wrongFilters = await Rpc.FailsWith(StatusCode.InvalidArgument, () => agent.SearchTicketsAsync(new SearchTicketsRequest
        {
            Query = "other", Tag = tag, PageSize = 2, PageToken = first.NextPageToken,
        }).ResponseAsync);
        Assert.Equal(["page_token"], wrongFilters.Fields());

        await agent.ChangeStateAsync(new ChangeStateRequest { TicketId = pearl.Id, State = TicketState.Acknowledged });
        Assert.Equal([pearl.Id], await Search(new SearchTicketsRequest { Tag = tag, State = TicketState.Acknowledged }));
        Assert.Equal([quiet.Id, ring.Id], await Search(new SearchTicketsRequest { CustomerId = customer, State = TicketState.New }));
        var none = await Rpc.FailsWith(StatusCode.InvalidArgument, () => agent.SearchTicketsAsync(new SearchTicketsRequest()).ResponseAsync);
        Assert.Equal(["query"], none.Fields());
        // Chinese keywords go through the bigram index (pg_trgm has nothing to offer a two-character word: no trigram).
        await using (var connection = await suite.TicketsDb.OpenConnectionAsync())
        {
            var ctype = await Dapper.SqlMapper.ExecuteScalarAsync<string>(connection, "SELECT datctype FROM pg_database WHERE datname = current_database()");
            var trigrams = await Dapper.SqlMapper.ExecuteScalarAsync<int?>(connection, "SELECT cardinality(show_trgm('尺寸'))");
            await using var tx = await connection.BeginTransactionAsync();
            await Dapper.SqlMapper.ExecuteAsync(connection, "SET LOCAL enable_seqscan = off", transaction: tx);
            var plan = string.Join("\n", await Dapper.SqlMapper.QueryAsync<string>(connection,
                "EXPLAIN SELECT ticket_id FROM ticket_search WHERE text_bigrams(search_text) @> text_bigrams('尺寸') AND search_text ILIKE '%尺寸%'", transaction: tx));
            output.WriteLine($"ticketsdb LC_CTYPE {ctype}: show_trgm('尺寸') has {trigrams ?? 0} trigrams; plan:\n{plan}");
            Assert.Contains("ticket_search_bigrams", plan);
        }
        // Members do not search the desk.
        await Rpc.FailsWith(StatusCode.PermissionDenied, () => As(Roles.Member, customer).SearchTicketsAsync(new SearchTicketsRequest { Query = "x" }).ResponseAsync);
    }
}
