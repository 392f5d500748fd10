using Crm.Campaigns.V1;
using Dapper;
using Npgsql;

namespace Crm.Campaigns.Marketing;

public sealed record OutgoingMessage(Guid CampaignId, Guid CustomerId, string Occurrence, CampaignChannel Channel, string Text);

/// <summary>
/// Hands a rendered message to a channel (SMS, e-mail, app push, WeChat). Implementations must be idempotent by
/// (campaign, customer, occurrence): a send that succeeded may be repeated when the step after it fails.
/// </summary>
public interface IMessageSender
{
    Task SendAsync(OutgoingMessage message, CancellationToken ct);
}

/// <summary>The default sender: no outside gateway, the rendered message goes to the message_log table.</summary>
public sealed class DeliveryLogSender(NpgsqlDataSource db, TimeProvider clock) : IMessageSender
{
    public async Task SendAsync(OutgoingMessage m, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition("""
            INSERT INTO message_log (campaign_id, customer_id, occurrence, channel, message, sent_at)
            VALUES (@CampaignId, @CustomerId, @Occurrence, @channel, @Text, @now)
            ON CONFLICT DO NOTHING
            """, new { m.CampaignId, m.CustomerId, m.Occurrence, channel = (short)m.Channel, m.Text, now = clock.GetUtcNow().UtcDateTime },
            cancellationToken: ct));
    }
}
