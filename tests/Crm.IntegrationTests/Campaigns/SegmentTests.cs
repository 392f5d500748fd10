using Crm.Campaigns.V1;
using Crm.Common.V1;
using Crm.Customer.V1;
using Crm.IntegrationTests.Support;
using Dapper;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;

namespace Crm.IntegrationTests.Campaigns;

/// <summary>
/// Segments end to end: profiles, consent, orders and refunds go through the customer service (→ outbox → RabbitMQ → the
/// campaign read model), tiers through the loyalty service's TierChanged; the scores the recompute writes in production
/// (customer_scores) are inserted directly. Each test's customers carry a tag of their own and each rule is limited to it,
/// so the suite's other customers never match.
/// </summary>
[Collection(SuiteCollection.Name)]
public class SegmentTests(SuiteFixture suite)
{
    private readonly CustomerService.CustomerServiceClient _customers = new(suite.Customer.Channel);
    private readonly SegmentService.SegmentServiceClient _segments = new(suite.Campaigns.ChannelFor(Crm.ServiceDefaults.Security.Roles.Marketing));

    private static string NewTag() => "seg-" + Guid.NewGuid().ToString("N")[..10];

    private async Task<string> NewCustomerAsync(string tag, bool consent, string region = "上海", string city = "上海", int birthdayMonth = 0)
    {
        var profile = new CustomerProfile
        {
            Name = "周敏", Phone = Customer.CustomerProfileTests.UniquePhone(), Region = region, City = city, MarketingConsent = consent,
            Birthday = birthdayMonth == 0 ? null : new Google.Type.Date { Year = 1990, Month = birthdayMonth, Day = 12 },
        };
        profile.Tags.Add(tag);
        return (await _customers.CreateCustomerAsync(new CreateCustomerRequest { Profile = profile })).Id;
    }

    private async Task<Order> PayAsync(string customerId, decimal amount)
    {
        var yuan = Money.FromDecimal(amount);
        var request = new RecordOrderRequest
        {
            CustomerId = customerId, ExternalOrderId = "SEG-" + Guid.NewGuid().ToString("N"), Channel = "store", AmountPaid = yuan,
            PaidAt = Timestamp.FromDateTime(DateTime.UtcNow.AddMinutes(-5)),
        };
        request.Lines.Add(new OrderLine { Sku = "GOLD-BANGLE", Quantity = 1, UnitPrice = yuan });
        return await _customers.RecordOrderAsync(request);
    }

    /// <summary>Waits until the read model holds what the events said (polls the table; the test fails after 30 s).</summary>
    private async Task WaitForReadModelAsync(string sql, object args, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        await using var db = await suite.CampaignsDb.OpenConnectionAsync();
        while (!await db.ExecuteScalarAsync<bool>(sql, args))
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("Timed out waiting for " + what);
            await Task.Delay(100);
        }
    }

    /// <summary>
    /// The scores come from the production recompute (RecomputeScores stores every customer's row); the test then pins
    /// the RFM scores, group, quadrant and churn its rules select on, which real order histories cannot set exactly.
    /// </summary>
    private async Task SetScoresAsync(params (string CustomerId, int R, int F, int M, string Group, string? Quadrant, string Churn)[] rows)
    {
        var analytics = new Crm.Campaigns.V1.AnalyticsService.AnalyticsServiceClient(suite.Campaigns.ChannelFor(Crm.ServiceDefaults.Security.Roles.Marketing));
        await Recompute.RunAsync(analytics);
        await using var db = await suite.CampaignsDb.OpenConnectionAsync();
        foreach (var r in rows)
        {
            var pinned = await db.ExecuteAsync("""
                UPDATE customer_scores SET r = @R, f = @F, m = @M, rfm_cell = @cell, rfm_group = @Group, quadrant = @Quadrant, churn = @Churn
                WHERE customer_id = @id
                """, new { id = Guid.Parse(r.CustomerId), r.R, r.F, r.M, cell = $"{r.R}{r.F}{r.M}", r.Group, r.Quadrant, r.Churn });
            Assert.Equal(1, pinned); // the recompute stored a row for every customer of the read model
        }
    }

    private static SegmentRule Leaf(SegmentField field, SegmentOperator op, params string[] values)
    {
        var rule = new SegmentRule { Field = field, Op = op };
        rule.Values.AddRange(values);
        return rule;
    }

    private static SegmentRule All(params SegmentRule[] rules) { var r = new SegmentRule(); r.All.AddRange(rules); return r; }
    private static SegmentRule Any(params SegmentRule[] rules) { var r = new SegmentRule(); r.Any.AddRange(rules); return r; }
    private static SegmentRule Not(SegmentRule rule) => new() { Not = rule };

    private async Task<List<string>> PreviewAllAsync(PreviewSegmentRequest request)
    {
        var ids = new List<string>();
        do
        {
            var page = await _segments.PreviewSegmentAsync(request);
            ids.AddRange(page.Members.Select(m => m.CustomerId));
            request.PageToken = page.NextPageToken;
        } while (request.PageToken != "");
        return ids;
    }

    [Fact]
    public async Task Tier_S3_or_above_and_recency_4_or_more_and_consent_is_exactly_the_fixtures_members()
    {
        var tag = NewTag();
        var a = await NewCustomerAsync(tag, consent: true);   // S3, recency 5: in
        var b = await NewCustomerAsync(tag, consent: true);   // S3, recency 3: out
        var c = await NewCustomerAsync(tag, consent: false);  // S3, recency 5, no consent: out
        var d = await NewCustomerAsync(tag, consent: true);   // S2, recency 5: out
        var e = await NewCustomerAsync(tag, consent: true);   // S4, recency 4: in
        // Growth value = yuan paid: S3 from 80,001, S4 from 180,001.
        foreach (var (id, amount) in new[] { (a, 90_000m), (b, 90_000m), (c, 90_000m), (d, 10_000m), (e, 200_000m) })
            await PayAsync(id, amount);
        await WaitForReadModelAsync("""
            SELECT count(*) = 5 FROM customers WHERE customer_id = ANY(@ids)
              AND region IS NOT NULL AND tier = CASE customer_id WHEN @d THEN 'S2' WHEN @e THEN 'S4' ELSE 'S3' END
            """, new { ids = new[] { a, b, c, d, e }.Select(Guid.Parse).ToArray(), d = Guid.Parse(d), e = Guid.Parse(e) }, "the profiles and the tiers from loyalty");
        await SetScoresAsync((a, 5, 1, 5, "promising", "vip", "low"), (b, 3, 1, 5, "needs_attention", "vip", "medium"),
            (c, 5, 1, 5, "promising", "vip", "low"), (d, 5, 1, 5, "promising", "growable", "low"), (e, 4, 1, 5, "promising", "vip", "low"));

        var rules = All(
            Leaf(SegmentField.Tags, SegmentOperator.HasAny, tag),
            new SegmentRule { Field = SegmentField.Tier, Op = SegmentOperator.Range, Min = "S3" },
            new SegmentRule { Field = SegmentField.RfmR, Op = SegmentOperator.Range, Min = "4" },
            new SegmentRule { Field = SegmentField.MarketingConsent, Op = SegmentOperator.IsTrue });
        var segment = await _segments.CreateSegmentAsync(new CreateSegmentRequest
            { Name = "S3+ recent with consent " + tag, Rules = rules, IdempotencyKey = "seg-create-" + tag });
        Assert.Equal(rules, segment.Rules); // stored as data, read back as the same tree

        Assert.Equal(2, (await _segments.CountSegmentAsync(new CountSegmentRequest { SegmentId = segment.SegmentId })).Count);
        var expected = new[] { a, e }.Order().ToList();
        Assert.Equal(expected, await PreviewAllAsync(new PreviewSegmentRequest { SegmentId = segment.SegmentId, PageSize = 1 }));

        // Unsaved rules count the same, and a snapshot freezes the members.
        Assert.Equal(2, (await _segments.CountSegmentAsync(new CountSegmentRequest { Rules = rules })).Count);
        var snapshot = await _segments.SnapshotSegmentAsync(new SnapshotSegmentRequest
            { SegmentId = segment.SegmentId, Purpose = "tier welcome", IdempotencyKey = "snap-" + tag });
        Assert.Equal((2L, 1L, "tier welcome"), (snapshot.MemberCount, snapshot.SegmentVersion, snapshot.Purpose));
        var again = await _segments.SnapshotSegmentAsync(new SnapshotSegmentRequest { SegmentId = segment.SegmentId, IdempotencyKey = "snap-" + tag });
        Assert.Equal(snapshot.SnapshotId, again.SnapshotId);

        // B's recency rises to 4: the live count follows, the snapshot does not.
        await SetScoresAsync((b, 4, 1, 5, "promising", "vip", "low"));
        Assert.Equal(3, (await _segments.CountSegmentAsync(new CountSegmentRequest { SegmentId = segment.SegmentId })).Count);
        var frozen = new List<string>();
        var members = new ListSnapshotMembersRequest { SnapshotId = snapshot.SnapshotId, PageSize = 1 };
        do
        {
            var page = await _segments.ListSnapshotMembersAsync(members);
            frozen.AddRange(page.CustomerIds);
            members.PageToken = page.NextPageToken;
        } while (members.PageToken != "");
        Assert.Equal(expected, frozen);
    }

    [Fact]
    public async Task Nested_any_and_not_over_region_city_quadrant_spend_after_a_refund_and_order_count()
    {
        var tag = NewTag();
        var f = await NewCustomerAsync(tag, true, "上海", "上海", birthdayMonth: 3);  // region matches, two orders: in
        var g = await NewCustomerAsync(tag, true, "广东", "深圳");                     // Shenzhen but "abandon", and net 1,000 after a refund: out
        var h = await NewCustomerAsync(tag, true, "广东", "广州");                     // net 6,000: in
        var i = await NewCustomerAsync(tag, true, "上海", "上海", birthdayMonth: 3);  // Shanghai but no orders: out
        await PayAsync(f, 3_000m);
        await PayAsync(f, 2_000m);
        var gOrder = await PayAsync(g, 8_000m);
        await _customers.RefundOrderAsync(new RefundOrderRequest { RefundId = "RF-" + Guid.NewGuid(), OrderId = gOrder.Id, Amount = Money.FromDecimal(7_000m) });
        await PayAsync(h, 6_000m);
        await WaitForReadModelAsync("""
            SELECT (SELECT count(*) FROM orders WHERE customer_id = ANY(@ids) AND paid_at IS NOT NULL) = 4
               AND (SELECT amount_refunded FROM orders WHERE order_id = @g) = 7000
               AND (SELECT count(*) FROM customers WHERE customer_id = ANY(@all) AND region IS NOT NULL) = 4
            """, new { ids = new[] { f, g, h }.Select(Guid.Parse).ToArray(), all = new[] { f, g, h, i }.Select(Guid.Parse).ToArray(), g = Guid.Parse(gOrder.Id) },
            "the orders and the refund");
        await SetScoresAsync((f, 5, 2, 3, "promising", "growable", "low"), (g, 5, 1, 4, "promising", "abandon", "low"),
            (h, 5, 1, 5, "promising", "vip", "low"), (i, 0, 0, 0, "needs_attention", null, "high"));

        // tag AND (region 上海 OR (city 深圳 AND NOT abandon) OR net spend ≥ 5,000) AND NOT (no orders)
        var rules = All(
            Leaf(SegmentField.Tags, SegmentOperator.HasAll, tag),
            Any(Leaf(SegmentField.Region, SegmentOperator.In, "上海"),
                All(Leaf(SegmentField.City, SegmentOperator.In, "深圳"), Not(Leaf(SegmentField.ClvQuadrant, SegmentOperator.In, "abandon"))),
                new SegmentRule { Field = SegmentField.NetSpend, Op = SegmentOperator.Range, Min = "5000.00" }),
            Not(new SegmentRule { Field = SegmentField.OrderCount, Op = SegmentOperator.Range, Max = "0" }));
        var members = await PreviewAllAsync(new PreviewSegmentRequest { Rules = rules, PageSize = 200 });
        Assert.Equal(new[] { f, h }.Order(), members);

        // Without the refund G's 8,000 would pass the spend branch; with it, G is 1,000 net and out. The birthday-month and
        // last-order fields: F and I were born in March, and only F has ordered in the last 30 days.
        var march = All(Leaf(SegmentField.Tags, SegmentOperator.HasAny, tag), Leaf(SegmentField.BirthdayMonth, SegmentOperator.In, "3"),
            new SegmentRule { Field = SegmentField.LastOrder, Op = SegmentOperator.After, DaysAgo = 30 });
        Assert.Equal([f], await PreviewAllAsync(new PreviewSegmentRequest { Rules = march }));
        var spend = All(Leaf(SegmentField.Tags, SegmentOperator.HasAny, tag),
            new SegmentRule { Field = SegmentField.NetSpend, Op = SegmentOperator.Range, Min = "1000.00", Max = "5000.00" });
        Assert.Equal(new[] { f, g }.Order(), await PreviewAllAsync(new PreviewSegmentRequest { Rules = spend }));
    }

    [Fact]
    public async Task An_invalid_rule_is_INVALID_ARGUMENT_naming_its_path()
    {
        var rules = Any(
            Leaf(SegmentField.Region, SegmentOperator.In, "上海"),
            Leaf(SegmentField.City, SegmentOperator.In, "深圳"),
            All(new SegmentRule { Op = SegmentOperator.In, Values = { "S3" } }, Leaf(SegmentField.ChurnRisk, SegmentOperator.In, "severe")));
        var ex = await Rpc.FailsWith(StatusCode.InvalidArgument,
            () => _segments.CreateSegmentAsync(new CreateSegmentRequest { Name = "broken " + NewTag(), Rules = rules }).ResponseAsync);
        Assert.Equal(["rules.any[2].all[0].field", "rules.any[2].all[1].values[0]"], ex.Fields());

        ex = await Rpc.FailsWith(StatusCode.InvalidArgument,
            () => _segments.CountSegmentAsync(new CountSegmentRequest { Rules = Not(new SegmentRule()) }).ResponseAsync);
        Assert.Equal(["rules.not"], ex.Fields());
        ex = await Rpc.FailsWith(StatusCode.InvalidArgument, () => _segments.CountSegmentAsync(new CountSegmentRequest()).ResponseAsync);
        Assert.Equal(["segment_id"], ex.Fields());
    }

    [Fact]
    public async Task Segments_are_created_once_per_key_named_uniquely_updated_by_version_listed_by_name_and_deleted()
    {
        var tag = NewTag();
        var rules = Leaf(SegmentField.Tags, SegmentOperator.HasAny, tag);
        var create = new CreateSegmentRequest { Name = "b " + tag, Description = "first", Rules = rules, IdempotencyKey = "k-" + tag };
        var first = await _segments.CreateSegmentAsync(create);
        var retry = await _segments.CreateSegmentAsync(create);
        Assert.Equal((first.SegmentId, 1L), (retry.SegmentId, retry.Version));
        await Rpc.FailsWith(StatusCode.AlreadyExists,
            () => _segments.CreateSegmentAsync(new CreateSegmentRequest { Name = "b " + tag, Rules = rules }).ResponseAsync);
        var second = await _segments.CreateSegmentAsync(new CreateSegmentRequest { Name = "a " + tag, Rules = rules });

        var updated = await _segments.UpdateSegmentAsync(new UpdateSegmentRequest
            { SegmentId = first.SegmentId, Version = 1, Name = "c " + tag, Description = "second", Rules = Not(rules) });
        Assert.Equal((2L, "c " + tag, "second", Not(rules)), (updated.Version, updated.Name, updated.Description, updated.Rules));
        await Rpc.FailsWith(StatusCode.Aborted, () => _segments.UpdateSegmentAsync(new UpdateSegmentRequest
            { SegmentId = first.SegmentId, Version = 1, Name = "d " + tag, Rules = rules }).ResponseAsync);

        var names = new List<string>();
        var list = new ListSegmentsRequest { PageSize = 1 };
        do
        {
            var page = await _segments.ListSegmentsAsync(list);
            names.AddRange(page.Segments.Select(s => s.Name).Where(n => n.EndsWith(tag, StringComparison.Ordinal)));
            list.PageToken = page.NextPageToken;
        } while (list.PageToken != "");
        Assert.Equal(["a " + tag, "c " + tag], names);

        await _segments.DeleteSegmentAsync(new DeleteSegmentRequest { SegmentId = second.SegmentId });
        await Rpc.FailsWith(StatusCode.NotFound, () => _segments.GetSegmentAsync(new GetSegmentRequest { SegmentId = second.SegmentId }).ResponseAsync);
        await Rpc.FailsWith(StatusCode.NotFound, () => _segments.DeleteSegmentAsync(new DeleteSegmentRequest { SegmentId = second.SegmentId }).ResponseAsync);
    }
}
