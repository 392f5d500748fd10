namespace Crm.Messaging;

/// <summary>
/// How an <see cref="InboxConsumer{TMessage}"/> treats a message it fails to apply (section <c>Messaging:Consumer</c>).
/// A few quick in-memory retries absorb transient faults (a deadlock, a serialization failure); after them the message is
/// parked in the consumer's own database and swept back later (<see cref="ParkingOptions"/>). When the message cannot
/// even be parked (the database is unreachable) it stays unacknowledged on the broker and is retried in memory with
/// exponential back-off for as long as that lasts, so nothing is lost and nothing is moved to an _error queue.
/// </summary>
public sealed class ConsumerRetryOptions
{
    /// <summary>Delays between the quick in-memory attempts before parking.</summary>
    public TimeSpan[] InMemoryDelays { get; set; } = [TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(1)];

    /// <summary>First delay while the message can neither be applied nor parked; doubles up to <see cref="OutageMaxDelay"/>.</summary>
    public TimeSpan OutageFirstDelay { get; set; } = TimeSpan.FromMilliseconds(500);

    public TimeSpan OutageMaxDelay { get; set; } = TimeSpan.FromSeconds(30);
}

/// <summary>Parked messages and their sweeper (section <c>Messaging:Parking</c>).</summary>
public sealed class ParkingOptions
{
    /// <summary>Delay before the first redelivery of a parked message; doubles with every failed redelivery.</summary>
    public TimeSpan FirstDelay { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Cap of the growing delay.</summary>
    public TimeSpan MaxDelay { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Failed attempts after which the message is marked failed for good (kept, listed, replayable by an operator).
    /// With the defaults (5 s doubling to 10 min, 100 attempts) a message keeps coming back for about 16 hours.
    /// </summary>
    public int MaxAttempts { get; set; } = 100;

    /// <summary>How often the sweeper looks for parked messages that are due.</summary>
    public TimeSpan SweepInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Parked messages re-sent per sweep round.</summary>
    public int BatchSize { get; set; } = 100;

    /// <summary>The longest a parked message can keep being redelivered automatically.</summary>
    public TimeSpan Horizon()
    {
        var total = TimeSpan.Zero;
        for (var attempt = 1; attempt <= MaxAttempts; attempt++) total += Delay(attempt);
        return total;
    }

    /// <summary>The delay after the <paramref name="attempt"/>-th failed attempt.</summary>
    public TimeSpan Delay(int attempt) =>
        TimeSpan.FromMilliseconds(Math.Min(MaxDelay.TotalMilliseconds, FirstDelay.TotalMilliseconds * Math.Pow(2, Math.Min(attempt - 1, 30))));
}

/// <summary>The inbox table's retention (section <c>Messaging:Inbox</c>).</summary>
public sealed class InboxOptions
{
    /// <summary>
    /// How long a processed message id is remembered. Must be longer than any redelivery can take: the parking
    /// horizon (<see cref="ParkingOptions.Horizon"/>) and the broker's own redelivery of an unacknowledged message.
    /// </summary>
    public TimeSpan Retention { get; set; } = TimeSpan.FromDays(14);

    /// <summary>How often old inbox entries are pruned.</summary>
    public TimeSpan PruneInterval { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Rows deleted per statement, so pruning never holds long locks.</summary>
    public int PruneBatchSize { get; set; } = 10_000;
}
