using Crm.Messaging.Parking;
using Dapper;
using MassTransit;
using Npgsql;

namespace Crm.Messaging;

/// <summary>
/// What every batch consumer shares: which messages of a batch go one by one (no message id, or replayed from the park),
/// the inbox claim of the rest in one statement, and the one-by-one fallback with the scope's services.
/// </summary>
public static class InboxBatch
{
    public static (List<ConsumeContext<T>> Together, List<ConsumeContext<T>> Alone) Split<T>(ConsumeContext<Batch<T>> context) where T : class
    {
        var messages = context.Message.ToList();
        var alone = messages.Where(m => m.MessageId is null || m.Headers.TryGetHeader(ParkedMessages.ReplayHeader, out _)).ToList();
        return (messages.Except(alone).ToList(), alone);
    }

    /// <summary>
    /// Claims the messages' ids under <paramref name="consumer"/>'s inbox name and returns those not seen before, each once.
    /// Sorted: two batches sharing a message id (a redelivery racing its first copy) wait on each other in one order.
    /// </summary>
    public static async Task<List<T>> ClaimAsync<T>(NpgsqlTransaction tx, IReadOnlyList<ConsumeContext<T>> messages, string consumer,
        CancellationToken ct) where T : class
    {
        var claimed = (await tx.Connection!.QueryAsync<Guid>(new CommandDefinition("""
            INSERT INTO inbox_messages (message_id, consumer) SELECT id, @consumer FROM unnest(@ids) AS id ORDER BY id ON CONFLICT DO NOTHING RETURNING message_id
            """, new { ids = messages.Select(m => m.MessageId!.Value).Distinct().ToArray(), consumer }, tx, cancellationToken: ct))).ToHashSet();
        return messages.Where(m => claimed.Remove(m.MessageId!.Value)).Select(m => m.Message).ToList();
    }

    /// <summary>
    /// Each message through the one-by-one consumer (its retries and parking). A message inside a batch lacks the scope's
    /// services, which parking needs; without them a failing message throws and the whole batch goes to retries, then _error.
    /// </summary>
    public static async Task OneByOneAsync<T>(IEnumerable<ConsumeContext<T>> messages, IConsumer<T> single, IServiceProvider services) where T : class
    {
        foreach (var message in messages)
        {
            message.GetOrAddPayload(() => services);
            await single.Consume(message);
        }
    }
}
