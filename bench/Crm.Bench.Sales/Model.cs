namespace Crm.Bench.Sales;

/// <summary>One timed call of the report phase: a report RPC, or the plain aggregate scan it is compared with.</summary>
public sealed record ReportTiming(string Name, string What, Latency Latency, int ResponseBytes);

public sealed record ReportPhaseResult(int Rounds, int WarmupRounds, ReportTiming Scan, List<ReportTiming> Reports, CpuUsage Cpu);

public sealed record SeedSummary(int Opportunities, long HistoryRows, int Owners, int Teams, Dictionary<string, int> ByStage, double Seconds, string Check);

public sealed class SalesBenchReport
{
    public required string RunId { get; init; }
    public required Options Options { get; init; }
    public required MachineInfo Machine { get; init; }
    public SeedSummary? Seed { get; set; }
    public ReportPhaseResult? Reports { get; set; }
    public PgbenchResult? PgbenchTpcb { get; set; }
    public LoadResult? MoveStage { get; set; }
    public string? MoveSetup { get; set; }
    public string? Failure { get; set; }
    public List<string> LeftoverProcesses { get; set; } = [];
    public List<string> Background { get; set; } = [];
    public double TotalSeconds { get; set; }
}
