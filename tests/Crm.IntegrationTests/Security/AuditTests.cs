using Crm.Audit.V1;
using Crm.Common.V1;
using Crm.Customer.V1;
using Crm.IntegrationTests.Support;
using Crm.ServiceDefaults.Security;
using Dapper;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;

namespace Crm.IntegrationTests.Security;

/// <summary>Every accepted write leaves one audit row, in its own transaction; ListAuditEvents is admin-only.</summary>
[Collection(SuiteCollection.Name)]
public sealed class AuditTests(SuiteFixture suite)
{
    [Fact]
    public async Task A_refund_by_a_partner_shows_up_with_its_subject_and_a_failed_refund_leaves_no_row()
    {
        var subject = "erp-acme-" + Guid.NewGuid().ToString("N")[..8];
        var partner = new CustomerService.CustomerServiceClient(suite.Customer.ChannelFor(Roles.Partner, subject));
        var customer = (await partner.UpsertCustomerAsync(new UpsertCustomerRequest
        {
            Ref = new ExternalRef { System = "erp", Id = "AUD-" + Guid.NewGuid().ToString("N") },
            Profile = new CustomerProfile { Name = "赵敏", Phone = Customer.CustomerProfileTests.UniquePhone(), SourceChannel = "online" },
        })).Customer;
        var order = new RecordOrderRequest
        {
            CustomerId = customer.Id, ExternalOrderId = "ERP-" + Guid.NewGuid().ToString("N"), Channel = "online",
            AmountPaid = new Money { Amount = "1000.00" }, PaidAt = Timestamp.FromDateTime(DateTime.UtcNow.AddMinutes(-5)),
        };
        order.Lines.Add(new OrderLine { Sku = "RING-AU-750", Quantity = 1, UnitPrice = new Money { Amount = "1000.00" } });
        var recorded = await partner.RecordOrderAsync(order);
        var refund = new RefundOrderRequest { RefundId = "RF-" + Guid.NewGuid(), OrderId = recorded.Id, Amount = new Money { Amount = "300.00" } };
        await partner.RefundOrderAsync(refund);
        var tooMuch = new RefundOrderRequest { RefundId = "RF-" + Guid.NewGuid(), OrderId = recorded.Id, Amount = new Money { Amount = "700.01" } };
        await Support.Rpc.FailsWith(StatusCode.FailedPrecondition, () => partner.RefundOrderAsync(tooMuch).ResponseAsync);

        var audit = new AuditLog.AuditLogClient(suite.Customer.Channel); // admin
        var events = (await audit.ListAuditEventsAsync(new ListAuditEventsRequest { TargetId = recorded.Id })).Events;
        var refunded = Assert.Single(events, e => e.Rpc.EndsWith("/RefundOrder", StringComparison.Ordinal));
        Assert.Equal((subject, Roles.Partner, refund.RefundId, "OK", "/crm.customer.v1.CustomerService/RefundOrder"),
            (refunded.Subject, refunded.Role, refunded.IdempotencyKey, refunded.Outcome, refunded.Rpc));
        Assert.Contains(events, e => e.Rpc.EndsWith("/RecordOrder", StringComparison.Ordinal) && e.Subject == subject && e.IdempotencyKey == order.ExternalOrderId);
        Assert.DoesNotContain(events, e => e.IdempotencyKey == tooMuch.RefundId);
        Assert.True(events[0].Id > events[^1].Id, "newest first");

        // By actor: the customer, the order and the refund, nothing else.
        var byActor = (await audit.ListAuditEventsAsync(new ListAuditEventsRequest { Actor = subject })).Events;
        Assert.Equal(["RecordOrder", "RefundOrder", "UpsertCustomer"], byActor.Select(e => e.Rpc.Split('/')[^1]).Order());
        Assert.Equal(customer.Id, byActor.Single(e => e.Rpc.EndsWith("/UpsertCustomer", StringComparison.Ordinal)).TargetId);
        // By time, paged.
        var since = byActor.Min(e => e.At);
        var page = await audit.ListAuditEventsAsync(new ListAuditEventsRequest { Actor = subject, Since = since, PageSize = 2 });
        Assert.Equal(2, page.Events.Count);
        var next = await audit.ListAuditEventsAsync(new ListAuditEventsRequest { Actor = subject, Since = since, PageSize = 2, PageToken = page.NextPageToken });
        Assert.Equal("UpsertCustomer", Assert.Single(next.Events).Rpc.Split('/')[^1]);
        Assert.Empty((await audit.ListAuditEventsAsync(new ListAuditEventsRequest { Actor = subject, Until = since })).Events);

        // Only admin reads it.
        await Support.Rpc.FailsWith(StatusCode.PermissionDenied, () =>
            new AuditLog.AuditLogClient(suite.Customer.ChannelFor(Roles.Partner, subject)).ListAuditEventsAsync(new ListAuditEventsRequest()).ResponseAsync);
    }

    [Fact]
    public async Task Refused_calls_of_authenticated_callers_are_on_record_as_DENIED_and_anonymous_ones_are_not()
    {
        var partner = "erp-denied-" + Guid.NewGuid().ToString("N")[..8];
        var member = Guid.NewGuid().ToString();
        var victim = Guid.NewGuid().ToString();
        // A role without the RPC: refused before the request is read, so no target.
        await Support.Rpc.FailsWith(StatusCode.PermissionDenied, () => new Crm.Loyalty.V1.LoyaltyService.LoyaltyServiceClient(suite.Loyalty.ChannelFor(Roles.Partner, partner))
            .AdjustPointsAsync(new Crm.Loyalty.V1.AdjustPointsRequest { CustomerId = victim, Points = 10_000_000, Reason = "free", IdempotencyKey = "K-" + partner }).ResponseAsync);
        // A member naming another customer: refused in the handler, with the target.
        await Support.Rpc.FailsWith(StatusCode.PermissionDenied, () => new Crm.Loyalty.V1.LoyaltyService.LoyaltyServiceClient(suite.Loyalty.ChannelFor(Roles.Member, member))
            .GetAccountAsync(new Crm.Loyalty.V1.GetAccountRequest { CustomerId = victim }).ResponseAsync);
        // No token at all: not written (anyone can do that).
        await Support.Rpc.FailsWith(StatusCode.Unauthenticated, () => new Crm.Loyalty.V1.LoyaltyService.LoyaltyServiceClient(suite.Loyalty.ChannelWithToken(null))
            .AdjustPointsAsync(new Crm.Loyalty.V1.AdjustPointsRequest { CustomerId = victim, Points = 1, Reason = "anon", IdempotencyKey = "K-anon" }).ResponseAsync);

        var audit = new AuditLog.AuditLogClient(suite.Loyalty.Channel);
        var byPartner = Assert.Single((await audit.ListAuditEventsAsync(new ListAuditEventsRequest { Actor = partner })).Events);
        Assert.Equal(("/crm.loyalty.v1.LoyaltyService/AdjustPoints", Roles.Partner, "DENIED", ""),
            (byPartner.Rpc, byPartner.Role, byPartner.Outcome, byPartner.TargetId));
        var byMember = Assert.Single((await audit.ListAuditEventsAsync(new ListAuditEventsRequest { Actor = member })).Events);
        Assert.Equal(("/crm.loyalty.v1.LoyaltyService/GetAccount", Roles.Member, "DENIED", victim),
            (byMember.Rpc, byMember.Role, byMember.Outcome, byMember.TargetId));
        // Filtered by outcome; the victim's id carries only the refused read (nothing was written for it).
        var onVictim = Assert.Single((await audit.ListAuditEventsAsync(new ListAuditEventsRequest { TargetId = victim, Outcome = "denied" })).Events);
        Assert.Equal(byMember.Id, onVictim.Id);
        Assert.Empty((await audit.ListAuditEventsAsync(new ListAuditEventsRequest { TargetId = victim, Outcome = "OK" })).Events);
        await Support.Rpc.FailsWith(StatusCode.InvalidArgument, () => audit.ListAuditEventsAsync(new ListAuditEventsRequest { Outcome = "MAYBE" }).ResponseAsync);
    }

    [Fact]
    public async Task A_retry_with_the_same_idempotency_key_is_on_record_as_REPLAYED_not_as_a_second_write()
    {
        var customer = Guid.NewGuid().ToString();
        var agent = "agent-" + Guid.NewGuid().ToString("N")[..8];
        var loyalty = new Crm.Loyalty.V1.LoyaltyService.LoyaltyServiceClient(suite.Loyalty.Channel);
        await loyalty.OpenAccountAsync(new Crm.Loyalty.V1.OpenAccountRequest { CustomerId = customer });
        var adjust = new Crm.Loyalty.V1.AdjustPointsRequest { CustomerId = customer, Points = 250, Reason = "goodwill", IdempotencyKey = "ADJ-" + agent };
        var asAgent = new Crm.Loyalty.V1.LoyaltyService.LoyaltyServiceClient(suite.Loyalty.ChannelFor(Roles.Admin, agent));
        var first = await asAgent.AdjustPointsAsync(adjust);
        var again = await asAgent.AdjustPointsAsync(adjust);
        Assert.Equal(first.Id, again.Id);
        Assert.Equal(250, (await loyalty.GetAccountAsync(new Crm.Loyalty.V1.GetAccountRequest { CustomerId = customer })).Balance);

        var events = (await new AuditLog.AuditLogClient(suite.Loyalty.Channel).ListAuditEventsAsync(new ListAuditEventsRequest { Actor = agent })).Events;
        Assert.Equal([("REPLAYED", adjust.IdempotencyKey), ("OK", adjust.IdempotencyKey)], events.Select(e => (e.Outcome, e.IdempotencyKey)));
    }

    [Fact]
    public async Task The_audit_log_is_append_only()
    {
        await using var db = await suite.CustomerDb.OpenConnectionAsync();
        await new CustomerService.CustomerServiceClient(suite.Customer.Channel).CreateCustomerAsync(new CreateCustomerRequest
        {
            Profile = new CustomerProfile { Name = "周芷若", Phone = Customer.CustomerProfileTests.UniquePhone() },
        });
        await Assert.ThrowsAsync<Npgsql.PostgresException>(() => db.ExecuteAsync("UPDATE audit_events SET subject = 'nobody'"));
        await Assert.ThrowsAsync<Npgsql.PostgresException>(() => db.ExecuteAsync("DELETE FROM audit_events"));
    }

    [Fact]
    public async Task Loyalty_writes_are_audited_with_the_member_as_actor()
    {
        var member = Guid.NewGuid().ToString();
        var loyalty = new Crm.Loyalty.V1.LoyaltyService.LoyaltyServiceClient(suite.Loyalty.Channel);
        await loyalty.OpenAccountAsync(new Crm.Loyalty.V1.OpenAccountRequest { CustomerId = member });
        await new Crm.Loyalty.V1.LoyaltyService.LoyaltyServiceClient(suite.Loyalty.ChannelFor(Roles.Member, member))
            .CheckInAsync(new Crm.Loyalty.V1.CheckInRequest { CustomerId = member });

        var events = (await new AuditLog.AuditLogClient(suite.Loyalty.Channel).ListAuditEventsAsync(new ListAuditEventsRequest { TargetId = member })).Events;
        Assert.Equal([("CheckIn", member, Roles.Member), ("OpenAccount", Roles.Admin, Roles.Admin)],
            events.Select(e => (e.Rpc.Split('/')[^1], e.Subject, e.Role)));
    }
}
