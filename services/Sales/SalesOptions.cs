namespace Crm.Sales;

public sealed class StageOptions
{
    public string Code { get; set; } = "";
    /// <summary>Win probability in percent, 0-100.</summary>
    public int Probability { get; set; }
}

/// <summary>Settings under <c>Sales</c>.</summary>
public sealed class SalesOptions
{
    /// <summary>
    /// The pipeline in order. <c>won</c> and <c>lost</c> must be among them and close an opportunity; every other stage
    /// is open. Empty: qualification 10, needs_analysis 20, design_proposal 50, negotiation 75, won 100, lost 0.
    /// </summary>
    public List<StageOptions> Stages { get; set; } = [];

    /// <summary>The brand's time zone, for agenda days and weeks and "today" of expected close dates.</summary>
    public string TimeZone { get; set; } = "Asia/Shanghai";

    /// <summary>Deadline of each call to the customer service.</summary>
    public TimeSpan CustomerCallTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How often the reminder scheduler looks for activities that have come due (real time).</summary>
    public TimeSpan ReminderPollInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How often the order recorder looks for fully paid opportunities whose order is still owed.</summary>
    public TimeSpan OrderPollInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Longest wait between two attempts to record one opportunity's order.</summary>
    public TimeSpan OrderMaxBackoff { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Failed attempts after which an order is parked (order_status 'parked') for an operator instead of retried:
    /// 30 attempts with the default backoff is about two hours of trying.
    /// </summary>
    public int OrderMaxAttempts { get; set; } = 30;

    public static readonly IReadOnlyList<StageOptions> DefaultStages =
    [
        new() { Code = "qualification", Probability = 10 },
        new() { Code = "needs_analysis", Probability = 20 },
        new() { Code = "design_proposal", Probability = 50 },
        new() { Code = "negotiation", Probability = 75 },
        new() { Code = "won", Probability = 100 },
        new() { Code = "lost", Probability = 0 },
    ];
}
