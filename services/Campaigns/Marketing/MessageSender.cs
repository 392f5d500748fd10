using Crm.Campaigns.V1;
using Dapper;
using Npgsql;

namespace Crm.Campaigns.Marketing;

public sealed record OutgoingMessage(Guid CampaignId, Guid CustomerId, string Occurrence, CampaignChannel Channel, string Text);

/// <summary>
/// Hands rendered messages to a channel (SMS, e-mail, app push, WeChat), within the send's transaction: a sender that
/// writes to the database writes on it, so its record exists if and only if the deliveries are recorded as sent.
/// Implementations must be idempotent by (campaign, customer, occurrence): a send that succeeded may be repeated when the
/// transaction fails after it.
/// </summary>
public interface IMessageSender
{
    Task SendAsync(NpgsqlTransaction tx, IReadOnlyList<OutgoingMessage> messages, CancellationToken ct);
}

/// <summary>The default sender: no outside gateway, the rendered messages go to the message_log table, in one statement.</summary>
public sealed class DeliveryLogSender(TimeProvider clock) : IMessageSender
{
    public async Task SendAsync(NpgsqlTransaction tx, IReadOnlyList<OutgoingMessage> messages, CancellationToken ct)
    {
        if (messages.Count == 0) return;
        await tx.Connection!.ExecuteAsync(new CommandDefinition("""
            INSERT INTO message_log (campaign_id, customer_id, occurrence, channel, message, sent_at)
            SELECT m.*, @now FROM unnest(@campaigns::uuid[], @customers::uuid[], @occurrences::text[], @channels::smallint[], @texts::text[]) AS m
            ON CONFLICT DO NOTHING
            """, new
            {
                campaigns = messages.Select(m => m.CampaignId).ToArray(), customers = messages.Select(m => m.CustomerId).ToArray(),
                occurrences = messages.Select(m => m.Occurrence).ToArray(), channels = messages.Select(m => (short)m.Channel).ToArray(),
                texts = messages.Select(m => m.Text).ToArray(), now = clock.GetUtcNow().UtcDateTime,
            }, tx, cancellationToken: ct));
    }
}
