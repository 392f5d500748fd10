using System.Globalization;
using Crm.Campaigns.V1;
using Crm.Contracts;
using Crm.Customer.V1;
using Crm.Messaging;
using Crm.ServiceDefaults.Data;
using Dapper;
using Grpc.Core;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Crm.Campaigns.Marketing;

public enum SendOutcome { Sent, Duplicate, NoConsent, Capped, Deferred, Control }

/// <summary>
/// One campaign message to one customer, with every guard in order: the delivery log's key (campaign, customer,
/// occurrence) taken in a transaction — a concurrent copy of the same trigger waits on it and then sees it sent —, marketing
/// consent as the read model has it now, quiet hours (deferred until they end), the text (its {name} from the customer service),
/// the weekly cap, then the sender and MessageSent.
/// </summary>
public sealed class CampaignDispatcher(NpgsqlDataSource db, FrequencyCap cap, IMessageSender sender, CustomerService.CustomerServiceClient customers,
    IOptions<MarketingOptions> options, TimeProvider clock, ILogger<CampaignDispatcher> logger, CampaignRewards rewards, QuietHours quietHours, Outbox outbox)
{
    public async Task<SendOutcome> SendAsync(CampaignRow campaign, Guid customerId, string occurrence, string? tier, CancellationToken ct)
    {
        var now = clock.UtcNowForDb();
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var key = new { campaign.CampaignId, customerId, occurrence, now };
        var claimed = await connection.ExecuteAsync(new CommandDefinition("""
            INSERT INTO campaign_deliveries (campaign_id, customer_id, occurrence, status, at) VALUES (@CampaignId, @customerId, @occurrence, 'deferred', @now)
            ON CONFLICT DO NOTHING
            """, key, tx, cancellationToken: ct)) == 1
            || await connection.ExecuteScalarAsync<string>(new CommandDefinition("""
                SELECT status FROM campaign_deliveries WHERE campaign_id = @CampaignId AND customer_id = @customerId AND occurrence = @occurrence FOR UPDATE
                """, key, tx, cancellationToken: ct)) == "deferred";
        if (!claimed) return SendOutcome.Duplicate;

        var customer = await connection.QuerySingleOrDefaultAsync<(bool Consent, string? Tier, long? Points)>(new CommandDefinition("""
            SELECT marketing_consent, tier, points_balance FROM customers WHERE customer_id = @customerId
            """, key, tx, cancellationToken: ct));
        SendOutcome outcome;
        // Control group first: a held-out customer gets no message and no coupon and uses none of the cap. Only customers
        // the campaign could reach are held out (consent), so the control group is comparable with the treated one.
        DateTime? notBefore = null;
        if (customer.Consent && ControlGroup.IsHeldOut(campaign.CampaignId, customerId, campaign.ControlSharePercent)) outcome = SendOutcome.Control;
        else if (!customer.Consent) outcome = SendOutcome.NoConsent;
        // Quiet hours: the send waits until they end (deferred with a not-before time; DeferredRetry sends it then).
        else if ((notBefore = quietHours.NotBefore(now)) is not null) outcome = SendOutcome.Deferred;
        else if (await NameAsync(customerId, ct) is not { } name) outcome = SendOutcome.Deferred;
        else
        {
            outcome = await cap.TryTakeAsync(tx, customerId, now, ct) switch
            {
                CapOutcome.Allowed => SendOutcome.Sent,
                CapOutcome.Capped => SendOutcome.Capped,
                _ => SendOutcome.Deferred,
            };
            // The coupon, just before rendering: never a message without its coupon (no coupon → deferred, the cap given back).
            string? coupon = "";
            if (outcome == SendOutcome.Sent && campaign.RewardId is not null
                && (coupon = await rewards.IssueAsync(tx, campaign, customerId, occurrence, ct)) is null)
            {
                outcome = SendOutcome.Deferred;
                await cap.GiveBackAsync(customerId, now, ct);
            }
            if (outcome == SendOutcome.Sent)
            {
                var text = Templates.Render(campaign.Template, new Dictionary<string, string>
                {
                    ["name"] = name, ["tier"] = tier ?? customer.Tier ?? "", ["points"] = (customer.Points ?? 0).ToString(CultureInfo.InvariantCulture),
                    ["coupon"] = coupon ?? "",
                });
                await sender.SendAsync(new OutgoingMessage(campaign.CampaignId, customerId, occurrence, (CampaignChannel)campaign.Channel, text), ct);
                // MessageSent in the send's transaction: it exists if and only if the delivery is recorded as sent.
                await outbox.AddAsync(tx, new MessageSent(campaign.CampaignId, customerId, occurrence,
                    CampaignStore.EventName((CampaignChannel)campaign.Channel), new DateTimeOffset(now, TimeSpan.Zero)), ct);
            }
        }
        await connection.ExecuteAsync(new CommandDefinition("""
            UPDATE campaign_deliveries SET status = @status, at = @now, not_before = @notBefore
            WHERE campaign_id = @CampaignId AND customer_id = @customerId AND occurrence = @occurrence
            """, new { campaign.CampaignId, customerId, occurrence, now, notBefore, status = Status(outcome) }, tx, cancellationToken: ct));
        await tx.CommitAsync(ct);
        if (outcome == SendOutcome.Sent) outbox.Wake();
        return outcome;
    }

    public static string Status(SendOutcome outcome) => outcome switch
    {
        SendOutcome.Sent => "sent",
        SendOutcome.NoConsent => "no_consent",
        SendOutcome.Capped => "capped",
        SendOutcome.Control => "control",
        _ => "deferred",
    };

    /// <returns>The customer's name, or null when the customer service did not answer in time (the send is deferred).</returns>
    private async Task<string?> NameAsync(Guid customerId, CancellationToken ct)
    {
        try
        {
            var reply = await customers.GetCustomerAsync(new GetCustomerRequest { Id = customerId.ToString() },
                deadline: DateTime.UtcNow.Add(options.Value.CustomerCallTimeout), cancellationToken: ct);
            return reply.Profile?.Name ?? "";
        }
        catch (RpcException e)
        {
            logger.LogWarning("Campaign message deferred: the customer service answered {Status} for its name.", e.StatusCode);
            return null;
        }
    }
}
