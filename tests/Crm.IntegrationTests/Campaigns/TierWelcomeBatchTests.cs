using Crm.Campaigns.Marketing;
using Crm.Campaigns.V1;
using Crm.Contracts;
using Crm.Customer.V1;
using Crm.IntegrationTests.Loyalty;
using Crm.IntegrationTests.Support;
using Dapper;
using Google.Protobuf.WellKnownTypes;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;

namespace Crm.IntegrationTests.Campaigns;

/// <summary>
/// TierChanged taken in batches (Marketing:TierWelcome, the default): a burst of upgrades decided together still sends once
/// per customer, campaign and tier however often each event is delivered (again under its own message id, or as a new
/// message), never to a customer without consent (nor one who withdrew it), and holds out each campaign's control group.
/// </summary>
[Collection(SuiteCollection.Name)]
public class TierWelcomeBatchTests(SuiteFixture suite)
{
    private readonly GivingSteps _steps = new(suite);

    [Fact]
    public async Task A_burst_of_upgrades_with_redeliveries_sends_once_each_only_with_consent_and_holds_out_the_control_group()
    {
        var tag = GivingSteps.NewTag();
        string[] names = ["赵敏", "钱亮", "孙丽", "李强"];
        var consenting = new List<string>();
        foreach (var name in names) consenting.Add(await _steps.NewCustomerAsync(tag, consent: true, name: name));
        var never = await _steps.NewCustomerAsync(tag, consent: false);
        var withdrawn = await _steps.NewCustomerAsync(tag, consent: true);
        await _steps.WaitForProfilesAsync([.. consenting, never, withdrawn]);
        var customers = new CustomerService.CustomerServiceClient(suite.Customer.Channel);
        var current = await customers.GetCustomerAsync(new GetCustomerRequest { Id = withdrawn });
        var withdraw = new UpdateCustomerRequest
            { Id = withdrawn, Version = current.Version, Profile = new CustomerProfile { MarketingConsent = false }, UpdateMask = new FieldMask() };
        withdraw.UpdateMask.Paths.Add("marketing_consent");
        await customers.UpdateCustomerAsync(withdraw);
        await _steps.WaitForAsync<bool>("SELECT NOT marketing_consent FROM customers WHERE customer_id = @id", new { id = Guid.Parse(withdrawn) }, ok => ok,
            "the withdrawn consent in the read model");

        var segment = (await _steps.TagSegmentAsync(tag)).SegmentId;
        var welcome = await _steps.RunningAsync(new CreateCampaignRequest
        {
            Name = "batch welcome " + tag, Kind = CampaignKind.TierWelcome, SegmentId = segment, Channel = CampaignChannel.Sms,
            Template = "{name}，欢迎升级为 {tier} 会员", Schedule = new CampaignSchedule { Kind = ScheduleKind.OnEvent },
        });
        var held = await _steps.RunningAsync(new CreateCampaignRequest
        {
            Name = "batch welcome, half held out " + tag, Kind = CampaignKind.TierWelcome, SegmentId = segment, Channel = CampaignChannel.AppPush,
            Template = "{name}，{tier} 会员专享", ControlSharePercent = 50, Schedule = new CampaignSchedule { Kind = ScheduleKind.OnEvent },
        });

        // Every customer S1 → S2; each event three times: once, again under the same message id, and as a new message. All at once.
        var all = consenting.Append(never).Append(withdrawn).Select(Guid.Parse).ToList();
        var events = all.Select((c, i) => (Id: Guid.NewGuid(), Event: new TierChanged(c, "S1", "S2", 9_000 + i, "batch", DateTimeOffset.UtcNow, 1))).ToList();
        var copies = events.Concat(events).Concat(events.Select(e => (Id: Guid.NewGuid(), e.Event))).ToList();
        var bus = suite.Campaigns.Services.GetRequiredService<IBus>();
        using (var consumed = new ConsumedMessages(bus))
        {
            await Task.WhenAll(copies.Select(c => bus.Publish(c.Event, ctx => ctx.MessageId = c.Id)));
            // The read model's consumer and the welcome's each consume every delivery: twice the deliveries of each id.
            foreach (var id in copies.Select(c => c.Id).Distinct())
                await consumed.WaitAsync(id, 2 * copies.Count(c => c.Id == id), "every delivery of TierChanged");
        }

        await using var db = await suite.CampaignsDb.OpenConnectionAsync();
        var welcomeId = Guid.Parse(welcome.CampaignId);
        var heldId = Guid.Parse(held.CampaignId);
        var deliveries = (await db.QueryAsync<(Guid Campaign, Guid Customer, string Occurrence, string Status, DateTime At)>("""
            SELECT campaign_id, customer_id, occurrence, status, at FROM campaign_deliveries WHERE campaign_id = ANY (@ids)
            """, new { ids = new[] { welcomeId, heldId } })).ToList();
        string Expected(Guid campaign, Guid customer, int share) =>
            customer == Guid.Parse(never) || customer == Guid.Parse(withdrawn) ? "no_consent"
            : ControlGroup.IsHeldOut(campaign, customer, share) ? "control" : "sent";
        var expected = all.Select(c => (welcomeId, c, "tier:S2", Expected(welcomeId, c, 0)))
            .Concat(all.Select(c => (heldId, c, "tier:S2", Expected(heldId, c, 50))))
            .OrderBy(d => d.Item1).ThenBy(d => d.c).ToList();
        Assert.Equal(expected, deliveries.Select(d => (d.Campaign, d.Customer, d.Occurrence, d.Status)).OrderBy(d => d.Campaign).ThenBy(d => d.Customer));
        // Decided together: deliveries of several customers carry the same decision time.
        Assert.True(deliveries.GroupBy(d => d.At).Max(g => g.Count()) >= 2, "every delivery was decided on its own: no batch took more than one TierChanged");

        var messages = (await db.QueryAsync<(Guid Campaign, Guid Customer, string Message)>(
            "SELECT campaign_id, customer_id, message FROM message_log WHERE campaign_id = ANY (@ids)", new { ids = new[] { welcomeId, heldId } })).ToList();
        var sent = expected.Where(d => d.Item4 == "sent").ToList();
        Assert.Equal(sent.Count, messages.Count);
        foreach (var (campaign, customer, _, _) in sent)
        {
            var name = names[consenting.IndexOf(customer.ToString())];
            Assert.Equal(campaign == welcomeId ? $"{name}，欢迎升级为 S2 会员" : $"{name}，S2 会员专享",
                messages.Single(m => m.Campaign == campaign && m.Customer == customer).Message);
        }
        Assert.Equal(4, sent.Count(d => d.Item1 == welcomeId));
    }
}
