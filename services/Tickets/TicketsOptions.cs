namespace Crm.Tickets;

/// <summary>Section "Tickets".</summary>
public sealed class TicketsOptions
{
    public CalendarOptions Calendar { get; set; } = new();

    /// <summary>SLA targets by priority and tier; the first policy naming the ticket's tier wins, then one without tiers.</summary>
    public List<SlaPolicyOptions> SlaPolicies { get; set; } = [];

    /// <summary>A resolved ticket may be reopened this long after its resolution.</summary>
    public TimeSpan ReopenWindow { get; set; } = TimeSpan.FromDays(7);

    /// <summary>Where breached tickets go when their queue's team has no supervisor queue.</summary>
    public string SupervisorQueue { get; set; } = "supervisors";

    /// <summary>
    /// How often the SLA scheduler looks for breaches and due care calls (at least 100 ms). A breach is published at most
    /// this long (plus one pass) after its due time: 00:00:00.5 keeps that under a second.
    /// </summary>
    public TimeSpan SchedulerInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Connections a scheduler pass breaches on at once, each taking chunks of 500 due targets. One chunk keeps one
    /// Postgres backend busy, so a pass with many breaches finishes about this many times sooner while Postgres has the
    /// cores; with nothing due each runs one cheap statement.
    /// </summary>
    public int SchedulerConnections { get; set; } = 2;

    /// <summary>Targets due within this window are near-breach: logged once by the scheduler and listed by ListAtRisk.</summary>
    public TimeSpan NearBreachWindow { get; set; } = TimeSpan.FromMinutes(30);

    public CareCallOptions CareCall { get; set; } = new();

    /// <summary>Checked at start-up, so a bad configuration stops the service instead of failing the first ticket.</summary>
    public static bool IsValid(TicketsOptions o)
    {
        var policies = o.SlaPolicies is { Count: > 0 } configured ? configured : DefaultPolicies;
        if (policies.Any(p => p.FirstResponseMinutes <= 0 || p.ResolutionMinutes <= 0)) return false;
        if (!new[] { "low", "normal", "high", "urgent" }.All(name => policies.Any(p => p.Priority == name && p.Tiers.Count == 0))) return false;
        try
        {
            Sla.BusinessCalendar.From(o.Calendar);
            return o.ReopenWindow > TimeSpan.Zero && o.CareCall.Delay >= TimeSpan.Zero && o.SchedulerConnections >= 1;
        }
        catch (Exception e) when (e is ArgumentException or FormatException or TimeZoneNotFoundException or InvalidTimeZoneException)
        {
            return false;
        }
    }

    public static readonly IReadOnlyList<SlaPolicyOptions> DefaultPolicies =
    [
        new() { Priority = "urgent", Tiers = ["S5", "S6"], FirstResponseMinutes = 15, ResolutionMinutes = 240 },
        new() { Priority = "urgent", FirstResponseMinutes = 30, ResolutionMinutes = 480 },
        new() { Priority = "high", Tiers = ["S5", "S6"], FirstResponseMinutes = 30, ResolutionMinutes = 480 },
        new() { Priority = "high", FirstResponseMinutes = 60, ResolutionMinutes = 960 },
        new() { Priority = "normal", Tiers = ["S5", "S6"], FirstResponseMinutes = 120, ResolutionMinutes = 960 },
        new() { Priority = "normal", FirstResponseMinutes = 240, ResolutionMinutes = 1620 },
        new() { Priority = "low", FirstResponseMinutes = 480, ResolutionMinutes = 2700 },
    ];
}

public sealed class CalendarOptions
{
    public string TimeZone { get; set; } = "Asia/Shanghai";
    public string WorkStart { get; set; } = "09:00";
    /// <summary>HH:mm; "24:00" for working hours that run to midnight (with WorkStart 00:00 and all seven days: 24×7).</summary>
    public string WorkEnd { get; set; } = "18:00";
    /// <summary>Empty: Monday to Friday.</summary>
    public List<DayOfWeek> WorkDays { get; set; } = [];
    /// <summary>yyyy-MM-dd, local dates.</summary>
    public List<string> Holidays { get; set; } = [];

    public static readonly IReadOnlyList<DayOfWeek> DefaultWorkDays =
        [DayOfWeek.Monday, DayOfWeek.Tuesday, DayOfWeek.Wednesday, DayOfWeek.Thursday, DayOfWeek.Friday];
}

public sealed class SlaPolicyOptions
{
    /// <summary>low, normal, high, urgent</summary>
    public string Priority { get; set; } = "";
    /// <summary>Empty: any tier.</summary>
    public List<string> Tiers { get; set; } = [];
    public int FirstResponseMinutes { get; set; }
    public int ResolutionMinutes { get; set; }
}

public sealed class CareCallOptions
{
    /// <summary>A paid order above this amount (yuan) gets a care call.</summary>
    public decimal Threshold { get; set; } = 20_000m;
    /// <summary>The care call ticket opens this long after payment.</summary>
    public TimeSpan Delay { get; set; } = TimeSpan.FromDays(3);
}
