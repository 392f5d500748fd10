using Crm.Messaging.Parking;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Crm.Messaging;

/// <summary>
/// A consumer that applies each message once. The message id is recorded in inbox_messages in the same
/// transaction as the effect: a redelivery (or the relay publishing twice) finds the id and does nothing,
/// and a failed effect rolls the id back so the retry runs again. Events the effect adds to the outbox are
/// published once the transaction commits.
/// <para>
/// A message that keeps failing is never dropped and never moved to an _error queue: after a few quick in-memory
/// retries (<see cref="ConsumerRetryOptions"/>) it is parked in this service's database and swept back later with
/// growing delays (<see cref="ParkingOptions"/>), e.g. a refund that overtook its order comes back until the order has
/// been earned. If it cannot even be parked (the database is down) it stays unacknowledged on the broker and is
/// retried in memory with exponential back-off until the database answers again.
/// </para>
/// </summary>
public abstract class InboxConsumer<TMessage>(NpgsqlDataSource dataSource, Outbox? outbox = null) : IConsumer<TMessage>
    where TMessage : class
{
    public async Task Consume(ConsumeContext<TMessage> context)
    {
        var messageId = context.MessageId
            ?? throw new InvalidOperationException($"{typeof(TMessage).Name} arrived without a MessageId; the inbox needs one.");
        var consumer = GetType().Name;
        var ct = context.CancellationToken;
        var isReplay = context.Headers.TryGetHeader(ParkedMessages.ReplayHeader, out _);

        // The happy path needs nothing more; what failure handling needs is looked up on the first failure.
        ConsumerRetryOptions? retry = null;
        ParkedMessages? parked = null;
        ILogger logger = NullLogger.Instance;
        var failures = 0;
        var outageRounds = 0;
        while (true)
        {
            Exception error;
            try
            {
                await ApplyAsync(context, messageId, consumer, isReplay, ct);
                return;
            }
            catch (Exception ex) when (!ct.IsCancellationRequested)
            {
                error = ex;
            }

            failures++;
            if (retry is null)
            {
                var services = context.TryGetPayload<IServiceProvider>(out var provider) ? provider : null;
                retry = services?.GetService<IOptions<ConsumerRetryOptions>>()?.Value ?? new ConsumerRetryOptions();
                parked = services?.GetService<ParkedMessages>();
                logger = (ILogger?)services?.GetService<ILoggerFactory>()?.CreateLogger(GetType()) ?? NullLogger.Instance;
            }
            // A message re-sent from the park has had its quick retries already.
            var quickRetries = isReplay ? 0 : retry.InMemoryDelays.Length;
            if (failures <= quickRetries)
            {
                await Task.Delay(retry.InMemoryDelays[failures - 1], ct);
                continue;
            }
            if (parked is null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error); // not hosted by AddMessaging: the endpoint's retry policy decides

            try
            {
                var (status, attempts) = await parked.ParkAsync(context, consumer, error, ct);
                if (status == ParkedMessages.Failed)
                    logger.LogError(error, "{MessageType} {MessageId} failed {Attempts} times in {Consumer}; kept as failed for an operator to replay",
                        typeof(TMessage).Name, messageId, attempts, consumer);
                else
                    logger.LogWarning("{MessageType} {MessageId} failed in {Consumer} ({Error}); parked, attempt {Attempts}",
                        typeof(TMessage).Name, messageId, consumer, ParkedMessages.Describe(error), attempts);
                return;
            }
            catch (Exception parkError) when (!ct.IsCancellationRequested)
            {
                // Most likely the database itself is unreachable: keep the message on the broker and try again later.
                outageRounds++;
                var delay = TimeSpan.FromMilliseconds(Math.Min(retry.OutageMaxDelay.TotalMilliseconds,
                    retry.OutageFirstDelay.TotalMilliseconds * Math.Pow(2, Math.Min(outageRounds - 1, 20))));
                logger.LogWarning("{MessageType} {MessageId} can neither be applied nor parked ({Error}); retrying in {Delay}",
                    typeof(TMessage).Name, messageId, ParkedMessages.Describe(parkError), delay);
                await Task.Delay(delay, ct);
            }
        }
    }

    private async Task ApplyAsync(ConsumeContext<TMessage> context, Guid messageId, string consumer, bool isReplay, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var transaction = await connection.BeginTransactionAsync(ct);
        if (isReplay) await ParkedMessages.DeleteAsync(transaction, messageId, consumer, ct);
        await using (var claim = new NpgsqlCommand(
            "INSERT INTO inbox_messages (message_id, consumer) VALUES ($1, $2) ON CONFLICT DO NOTHING", connection, transaction))
        {
            claim.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = messageId });
            claim.Parameters.Add(new NpgsqlParameter<string> { TypedValue = consumer });
            if (await claim.ExecuteNonQueryAsync(ct) == 0)
            {
                await transaction.CommitAsync(ct); // applied before (and its parked copy, if any, is gone now)
                return;
            }
        }
        await HandleAsync(context, transaction);
        await transaction.CommitAsync(ct);
        outbox?.Wake();
    }

    /// <summary>Apply the message using <paramref name="transaction"/>; events to publish go through the Outbox with it.</summary>
    protected abstract Task HandleAsync(ConsumeContext<TMessage> context, NpgsqlTransaction transaction);
}
