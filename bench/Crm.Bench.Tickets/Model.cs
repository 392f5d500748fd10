namespace Crm.Bench.Tickets;

/// <summary>Everything one run measured; written as bench/out/tickets-&lt;runid&gt;.json and rendered by Report.</summary>
public sealed class TicketsReport
{
    public required string RunId { get; init; }
    public required Options Options { get; init; }
    public required MachineInfo Machine { get; init; }
    public double TotalSeconds { get; set; }
    public string? Failure { get; set; }
    public List<string> Background { get; } = [];
    public List<string> LeftoverProcesses { get; set; } = [];
    public Seeding? Seeding { get; set; }
    public PassPhase? Pass { get; set; }
    public AtRiskPhase? AtRisk { get; set; }
    /// <summary>The round with the median TPC-B rate (the lower middle one of an even count).</summary>
    public PgbenchResult? PgbenchTpcb { get; set; }
    /// <summary>The round with the median OpenTicket rate (the lower middle one of an even count).</summary>
    public LoadResult? OpenTicket { get; set; }
    public List<PgbenchResult> PgbenchTpcbRounds { get; } = [];
    public List<LoadResult> OpenTicketRounds { get; } = [];
    public JitWarmUpResult? OpenTicketJitWarmUp { get; set; }
    public JitActivity? OpenTicketJit { get; set; }
    public LatencyPhase? BreachLatency { get; set; }
}

public sealed record Seeding(int Tickets, double Seconds, double VacuumSeconds, long TableBytes, long TotalBytes, string VerifiedTicket);

/// <summary>One SlaScheduler.RunOnceAsync: its wall time, what it did and the CPU spent meanwhile.</summary>
public sealed record Pass(double Ms, int Breaches, int NearBreaches, int CareCalls, CpuUsage Cpu, JitActivity Jit)
{
    /// <summary>For a measured pass: from its end until every SlaBreached it wrote was received from the broker.</summary>
    public Publishing? Publishing { get; init; }
}

/// <summary>The outbox relay publishing a pass's events after it: how long until all arrived, and the CPU meanwhile.</summary>
public sealed record Publishing(double Ms, CpuUsage Cpu);

public sealed record PassPhase(
    Pass First, IReadOnlyList<Pass> Idle, IReadOnlyList<Pass> Measured, IReadOnlyList<double> ScanMs, long ScanRows, string ScanPlan,
    int TableRows)
{
    /// <summary>The unmeasured rounds (seed, pass, publish) run before the measured ones until the JIT settled.</summary>
    public JitWarmUpResult? JitWarmUp { get; init; }
    public double MedianPassMs => Stats.Median(Measured.Select(p => p.Ms));
    public double MedianIdleMs => Stats.Median(Idle.Select(p => p.Ms));
    public double MedianScanMs => Stats.Median(ScanMs);
    /// <summary>CPU per breach over all measured passes (CPU time is counted in 10 ms ticks, so one pass alone says little).</summary>
    public double BenchUsPerBreach => CpuUsage.PerOp(Measured.Sum(p => p.Cpu.BenchSeconds), Measured.Sum(p => p.Breaches));
    public double PostgresUsPerBreach => CpuUsage.PerOp(Measured.Sum(p => p.Cpu.PostgresSeconds), Measured.Sum(p => p.Breaches));
    public double MedianPublishedMs => Stats.Median(Measured.Select(p => p.Publishing?.Ms ?? 0));
    /// <summary>CPU per breach of publishing the events after the passes: bench process (relay), Postgres, RabbitMQ.</summary>
    public (double Bench, double Postgres, double RabbitMq) PublishingUsPerBreach => (
        CpuUsage.PerOp(Measured.Sum(p => p.Publishing?.Cpu.BenchSeconds ?? 0), Measured.Sum(p => p.Breaches)),
        CpuUsage.PerOp(Measured.Sum(p => p.Publishing?.Cpu.PostgresSeconds ?? 0), Measured.Sum(p => p.Breaches)),
        CpuUsage.PerOp(Measured.Sum(p => p.Publishing?.Cpu.RabbitMqSeconds ?? 0), Measured.Sum(p => p.Breaches)));

}

public sealed record AtRiskPhase(
    int WithinMinutes, int PageSize, IReadOnlyList<double> CallMs, int FirstPageRows, long AtRiskRows, int Pages, double AllPagesMs,
    IReadOnlyList<double> ScanMs)
{
    public double MedianCallMs => Stats.Median(CallMs);
    public double MedianScanMs => Stats.Median(ScanMs);
}

/// <summary>Due time → SlaBreached received (and its two parts: due → detected by the scheduler, detected → received).</summary>
public sealed record LatencyPhase(
    string SchedulerInterval, int Tickets, double LeadSeconds, double SpreadSeconds, int Received, int Duplicates, double WaitedSeconds,
    Latency DueToReceived, Latency DueToDetected, Latency DetectedToReceived, CpuUsage Cpu);
