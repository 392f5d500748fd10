using MassTransit;
using Npgsql;

namespace Crm.Messaging;

/// <summary>
/// A consumer that applies each message once. The message id is recorded in inbox_messages in the same
/// transaction as the effect: a redelivery (or the relay publishing twice) finds the id and does nothing,
/// and a failed effect rolls the id back so the retry runs again. Events the effect adds to the outbox are
/// published once the transaction commits.
/// </summary>
public abstract class InboxConsumer<TMessage>(NpgsqlDataSource dataSource, Outbox? outbox = null) : IConsumer<TMessage>
    where TMessage : class
{
    public async Task Consume(ConsumeContext<TMessage> context)
    {
        var messageId = context.MessageId
            ?? throw new InvalidOperationException($"{typeof(TMessage).Name} arrived without a MessageId; the inbox needs one.");

        await using var connection = await dataSource.OpenConnectionAsync(context.CancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(context.CancellationToken);
        await using (var claim = new NpgsqlCommand(
            "INSERT INTO inbox_messages (message_id, consumer) VALUES ($1, $2) ON CONFLICT DO NOTHING", connection, transaction))
        {
            claim.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = messageId });
            claim.Parameters.Add(new NpgsqlParameter<string> { TypedValue = GetType().Name });
            if (await claim.ExecuteNonQueryAsync(context.CancellationToken) == 0)
                return; // applied before
        }
        await HandleAsync(context, transaction);
        await transaction.CommitAsync(context.CancellationToken);
        outbox?.Wake();
    }

    /// <summary>Apply the message using <paramref name="transaction"/>; events to publish go through the Outbox with it.</summary>
    protected abstract Task HandleAsync(ConsumeContext<TMessage> context, NpgsqlTransaction transaction);
}
