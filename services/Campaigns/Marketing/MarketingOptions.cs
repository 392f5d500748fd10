namespace Crm.Campaigns.Marketing;

/// <summary>Settings under <c>Marketing</c>.</summary>
public sealed class MarketingOptions
{
    /// <summary>Messages a customer may get per calendar week (Monday to Sunday in the brand's time zone), across all campaigns.</summary>
    public int FrequencyCapPerWeek { get; set; } = 2;
    /// <summary>Deadline of the customer service call that fetches the {name} of a message.</summary>
    public TimeSpan CustomerCallTimeout { get; set; } = TimeSpan.FromSeconds(2);
    /// <summary>Deadline of the loyalty service call that issues a campaign's coupon; past it the send is deferred.</summary>
    public TimeSpan LoyaltyCallTimeout { get; set; } = TimeSpan.FromSeconds(2);
    /// <summary>What one message costs per channel, in yuan (simulation and ROI).</summary>
    public MessageUnitCosts UnitCost { get; set; } = new();

    /// <summary>Quiet hours in the brand's time zone, "HH:mm" each; a send in them is deferred until they end. Empty: none.</summary>
    public string QuietHoursStart { get; set; } = "21:00";
    public string QuietHoursEnd { get; set; } = "09:00";
    /// <summary>The scheduler (one-off, recurring, birthday, win-back runs) and the retry of deferred sends.</summary>
    public SchedulerOptions Scheduler { get; set; } = new();
    /// <summary>The endpoint that turns TierChanged into tier-welcome messages.</summary>
    public TierWelcomeOptions TierWelcome { get; set; } = new();
}

/// <summary>
/// Settings under <c>Marketing:TierWelcome</c>. By default TierChanged is taken in batches (one transaction and one
/// statement per step for all the messages waiting together); every guard stays exact however many run at once (the
/// delivery key, consent read in the send's transaction, the cap's atomic counter). Each batch, or each message one at a
/// time, holds one pooled database connection while it runs.
/// </summary>
public sealed class TierWelcomeOptions
{
    /// <summary>False: one TierChanged per transaction (<see cref="TierWelcomeConsumer"/>), ConcurrentMessageLimit at once.</summary>
    public bool Batches { get; set; } = true;
    /// <summary>Most TierChanged in one batch (1-200).</summary>
    public int BatchMessageLimit { get; set; } = 50;
    /// <summary>
    /// How long a batch waits for more messages after its first. A batch closed by this limit waits for a free slot without
    /// growing, so too short a limit makes a queue of small batches exactly when the endpoint falls behind.
    /// </summary>
    public TimeSpan BatchTimeLimit { get; set; } = TimeSpan.FromMilliseconds(50);
    /// <summary>Batches handled at once (1-8): a batch spends most of its time waiting on round trips, so a few at once keep up.</summary>
    public int ConcurrentBatches { get; set; } = 4;
    /// <summary>TierChanged messages handled at once (MassTransit's ConcurrentMessageLimit on the endpoint), 1-64.</summary>
    public int ConcurrentMessageLimit { get; set; } = 6;
    /// <summary>Messages RabbitMQ hands the endpoint ahead of acknowledgement; 0: twice the concurrent limit.</summary>
    public int PrefetchCount { get; set; }

    public int EffectivePrefetchCount => PrefetchCount > 0 ? PrefetchCount : 2 * ConcurrentMessageLimit;
}

public sealed class SchedulerOptions
{
    /// <summary>Off: campaigns send only through RunCampaign and their events (the test suite's shared instance).</summary>
    public bool Enabled { get; set; } = true;
    /// <summary>How often the scheduler looks for due occurrences (a cron minute is caught within it).</summary>
    public TimeSpan TickInterval { get; set; } = TimeSpan.FromSeconds(20);
    /// <summary>How often deferred sends whose not-before time has come are tried again.</summary>
    public TimeSpan RetryInterval { get; set; } = TimeSpan.FromMinutes(1);
    /// <summary>A run not finished after this long (its instance died) may be taken over by another instance.</summary>
    public TimeSpan RunLease { get; set; } = TimeSpan.FromMinutes(30);
    /// <summary>Days of missed birthdays (the service was down) greeted late when it comes back.</summary>
    public int BirthdayCatchUpDays { get; set; } = 3;
    /// <summary>Churn levels of the at-risk band: a customer rising into it after a recompute gets the win-back campaigns.</summary>
    public string[] WinBackChurn { get; set; } = ["high"];
    /// <summary>Points-expiring reminders go to members whose points expire within this many days (1-366).</summary>
    public int PointsExpiringWithinDays { get; set; } = 30;
}

/// <summary>Settings under <c>Marketing:UnitCost</c>: yuan per message.</summary>
public sealed class MessageUnitCosts
{
    public decimal Sms { get; set; } = 0.05m;
    public decimal Email { get; set; } = 0.01m;
    public decimal AppPush { get; set; } = 0.01m;
    public decimal WeChat { get; set; } = 0.02m;

    public decimal For(Crm.Campaigns.V1.CampaignChannel channel) => channel switch
    {
        Crm.Campaigns.V1.CampaignChannel.Sms => Sms,
        Crm.Campaigns.V1.CampaignChannel.Email => Email,
        Crm.Campaigns.V1.CampaignChannel.AppPush => AppPush,
        Crm.Campaigns.V1.CampaignChannel.Wechat => WeChat,
        _ => 0m,
    };
}
