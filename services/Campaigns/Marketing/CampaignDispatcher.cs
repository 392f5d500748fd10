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

/// <summary>One campaign message to one customer; <see cref="CampaignDispatcher"/> decides many of them together.</summary>
public sealed record SendRequest(CampaignRow Campaign, Guid CustomerId, string Occurrence, string? Tier);

/// <summary>
/// Campaign messages with every guard in order: the delivery log's key (campaign, customer, occurrence) taken in a
/// transaction — a concurrent copy of the same trigger waits on it and then sees it sent —, marketing consent as the read
/// model has it now, the control group, quiet hours (deferred until they end), the text (its {name} from the customer
/// service), the weekly cap, the coupon, then the sender and MessageSent. Many sends are decided together, set-based: one
/// statement per step for the whole set, the remote calls of the set in parallel, all on the caller's transaction.
/// </summary>
public sealed class CampaignDispatcher(NpgsqlDataSource db, FrequencyCap cap, IMessageSender sender, CustomerService.CustomerServiceClient customers,
    IOptions<MarketingOptions> options, TimeProvider clock, ILogger<CampaignDispatcher> logger, CampaignRewards rewards, QuietHours quietHours, Outbox outbox)
{
    /// <summary>One send on its own transaction.</summary>
    public async Task<SendOutcome> SendAsync(CampaignRow campaign, Guid customerId, string occurrence, string? tier, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var outcome = (await SendAsync(tx, [new SendRequest(campaign, customerId, occurrence, tier)], ct))[0];
        await tx.CommitAsync(ct);
        if (outcome == SendOutcome.Sent) outbox.Wake();
        return outcome;
    }

    /// <summary>
    /// Decides and sends <paramref name="requests"/> on <paramref name="tx"/>; the caller commits (then wakes the outbox when
    /// any was sent). The same key twice in the list: the second is a duplicate. If this throws, the week's allowances it took
    /// are given back; the caller's commit failing afterwards leaves them taken (a message too few, never one too many).
    /// </summary>
    /// <returns>The outcome of each request, in order.</returns>
    public async Task<SendOutcome[]> SendAsync(NpgsqlTransaction tx, IReadOnlyList<SendRequest> requests, CancellationToken ct)
    {
        var now = clock.UtcNowForDb();
        var connection = tx.Connection!;
        var outcomes = new SendOutcome[requests.Count];
        Array.Fill(outcomes, SendOutcome.Duplicate);
        var live = await ClaimAsync(tx, requests, now, ct);
        if (live.Count == 0) return outcomes;

        var ids = live.Select(i => requests[i].CustomerId).Distinct().ToArray();
        var read = (await connection.QueryAsync<(Guid Id, bool Consent, string? Tier, long? Points)>(new CommandDefinition("""
            SELECT customer_id, marketing_consent, tier, points_balance FROM customers WHERE customer_id = ANY (@ids)
            """, new { ids }, tx, cancellationToken: ct))).ToDictionary(c => c.Id);
        // Control group first: a held-out customer gets no message and no coupon and uses none of the cap. Only customers
        // the campaign could reach are held out (consent), so the control group is comparable with the treated one.
        // Quiet hours: the send waits until they end (deferred with a not-before time; DeferredRetry sends it then).
        var notBefore = quietHours.NotBefore(now);
        var pending = new List<int>();
        foreach (var i in live)
        {
            var r = requests[i];
            var consent = read.TryGetValue(r.CustomerId, out var c) && c.Consent;
            outcomes[i] = !consent ? SendOutcome.NoConsent
                : ControlGroup.IsHeldOut(r.Campaign.CampaignId, r.CustomerId, r.Campaign.ControlSharePercent) ? SendOutcome.Control
                : SendOutcome.Deferred;
            if (outcomes[i] == SendOutcome.Deferred && notBefore is null) pending.Add(i);
        }

        // The customer service is asked only for the names a template shows: a text without {name} costs no remote call.
        var names = await NamesAsync(pending.Where(i => UsesName(requests[i])).Select(i => requests[i].CustomerId).Distinct(), ct);
        pending.RemoveAll(i => UsesName(requests[i]) && names[requests[i].CustomerId] is null);
        var taken = new List<Guid>();
        try
        {
            var caps = await cap.TryTakeManyAsync(tx, pending.Select(i => requests[i].CustomerId).ToList(), now, ct);
            var allowed = new List<int>();
            for (var k = 0; k < pending.Count; k++)
            {
                if (caps[k] == CapOutcome.Allowed) { allowed.Add(pending[k]); taken.Add(requests[pending[k]].CustomerId); }
                else if (caps[k] == CapOutcome.Capped) outcomes[pending[k]] = SendOutcome.Capped;
            }
            // The coupon, just before rendering: never a message without its coupon (no coupon → deferred, the cap given back).
            var rewarded = allowed.Where(i => requests[i].Campaign.RewardId is not null).ToList();
            var codes = await rewards.IssueAsync(tx, rewarded.Select(i => requests[i]).ToList(), ct);
            var coupons = new Dictionary<int, string>();
            var noCoupon = new List<Guid>();
            for (var k = 0; k < rewarded.Count; k++)
                if (codes[k] is { } code) coupons[rewarded[k]] = code;
                else noCoupon.Add(requests[rewarded[k]].CustomerId);
            allowed.RemoveAll(i => requests[i].Campaign.RewardId is not null && !coupons.ContainsKey(i));
            if (noCoupon.Count > 0)
            {
                await cap.GiveBackManyAsync(noCoupon, now);
                foreach (var customer in noCoupon) taken.Remove(customer);
            }

            var messages = new List<OutgoingMessage>(allowed.Count);
            foreach (var i in allowed)
            {
                var r = requests[i];
                var c = read[r.CustomerId];
                var text = Templates.Render(r.Campaign.Template, new Dictionary<string, string>
                {
                    ["name"] = names.GetValueOrDefault(r.CustomerId) ?? "", ["tier"] = r.Tier ?? c.Tier ?? "", ["points"] = (c.Points ?? 0).ToString(CultureInfo.InvariantCulture),
                    ["coupon"] = coupons.GetValueOrDefault(i, ""),
                });
                messages.Add(new OutgoingMessage(r.Campaign.CampaignId, r.CustomerId, r.Occurrence, (CampaignChannel)r.Campaign.Channel, text));
                outcomes[i] = SendOutcome.Sent;
            }
            await sender.SendAsync(tx, messages, ct);
            // MessageSent in the send's transaction: it exists if and only if the delivery is recorded as sent.
            await outbox.AddRangeAsync(tx, messages.Select(m => new MessageSent(m.CampaignId, m.CustomerId, m.Occurrence,
                CampaignStore.EventName(m.Channel), new DateTimeOffset(now, TimeSpan.Zero))).ToList(), ct);
            await RecordAsync(tx, live.Select(i => (requests[i], outcomes[i])).ToList(), now, notBefore, ct);
            return outcomes;
        }
        catch
        {
            await cap.GiveBackManyAsync(taken, now);
            throw;
        }
    }

    /// <summary>
    /// Takes the delivery keys in one statement, in key order (two sets that share keys wait on each other, never deadlock);
    /// a key that exists already is taken again only while it is still deferred (row-locked, re-read after a concurrent send).
    /// </summary>
    /// <returns>Indexes of the requests this call now owns.</returns>
    private static async Task<List<int>> ClaimAsync(NpgsqlTransaction tx, IReadOnlyList<SendRequest> requests, DateTime now, CancellationToken ct)
    {
        var first = new Dictionary<(Guid, Guid, string), int>();
        for (var i = 0; i < requests.Count; i++) first.TryAdd((requests[i].Campaign.CampaignId, requests[i].CustomerId, requests[i].Occurrence), i);
        var keys = first.Keys.ToList();
        var p = new { campaigns = keys.Select(k => k.Item1).ToArray(), customers = keys.Select(k => k.Item2).ToArray(), occurrences = keys.Select(k => k.Item3).ToArray(), now };
        var claimed = (await tx.Connection!.QueryAsync<(Guid, Guid, string)>(new CommandDefinition("""
            INSERT INTO campaign_deliveries (campaign_id, customer_id, occurrence, status, at)
            SELECT k.campaign_id, k.customer_id, k.occurrence, 'deferred', @now
            FROM unnest(@campaigns::uuid[], @customers::uuid[], @occurrences::text[]) AS k(campaign_id, customer_id, occurrence)
            ORDER BY k.campaign_id, k.customer_id, k.occurrence
            ON CONFLICT DO NOTHING
            RETURNING campaign_id, customer_id, occurrence
            """, p, tx, cancellationToken: ct))).ToHashSet();
        if (claimed.Count < keys.Count)
            claimed.UnionWith(await tx.Connection!.QueryAsync<(Guid, Guid, string)>(new CommandDefinition("""
                SELECT d.campaign_id, d.customer_id, d.occurrence FROM campaign_deliveries d
                WHERE (d.campaign_id, d.customer_id, d.occurrence) IN (SELECT * FROM unnest(@campaigns::uuid[], @customers::uuid[], @occurrences::text[]))
                  AND d.status = 'deferred'
                ORDER BY 1, 2, 3
                FOR UPDATE
                """, p, tx, cancellationToken: ct)));
        return first.Where(f => claimed.Contains(f.Key)).Select(f => f.Value).Order().ToList();
    }

    private static async Task RecordAsync(NpgsqlTransaction tx, IReadOnlyList<(SendRequest Request, SendOutcome Outcome)> decided, DateTime now,
        DateTime? notBefore, CancellationToken ct)
    {
        // Only quiet hours give a not-before time; a send deferred for another reason (Redis, the customer service, the coupon) is retried at once.
        var quiet = notBefore is not null;
        await tx.Connection!.ExecuteAsync(new CommandDefinition("""
            UPDATE campaign_deliveries d SET status = u.status, at = @now, not_before = CASE WHEN u.status = 'deferred' AND @quiet THEN @notBefore END
            FROM unnest(@campaigns::uuid[], @customers::uuid[], @occurrences::text[], @statuses::text[]) AS u(campaign_id, customer_id, occurrence, status)
            WHERE d.campaign_id = u.campaign_id AND d.customer_id = u.customer_id AND d.occurrence = u.occurrence
            """, new
            {
                campaigns = decided.Select(d => d.Request.Campaign.CampaignId).ToArray(), customers = decided.Select(d => d.Request.CustomerId).ToArray(),
                occurrences = decided.Select(d => d.Request.Occurrence).ToArray(), statuses = decided.Select(d => Status(d.Outcome)).ToArray(),
                now, quiet, notBefore = notBefore ?? now,
            }, tx, cancellationToken: ct));
    }

    public static string Status(SendOutcome outcome) => outcome switch
    {
        SendOutcome.Sent => "sent",
        SendOutcome.NoConsent => "no_consent",
        SendOutcome.Capped => "capped",
        SendOutcome.Control => "control",
        _ => "deferred",
    };

    private static bool UsesName(SendRequest request) => Templates.Shows(request.Campaign.Template, "name");

    /// <summary>Each customer's name, asked in parallel; null for one the customer service did not answer in time (its sends are deferred).</summary>
    private async Task<Dictionary<Guid, string?>> NamesAsync(IEnumerable<Guid> customerIds, CancellationToken ct)
    {
        var ids = customerIds.ToList();
        var names = await Task.WhenAll(ids.Select(id => NameAsync(id, ct)));
        return ids.Select((id, k) => (id, names[k])).ToDictionary(x => x.id, x => x.Item2);
    }

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
