using System.Globalization;

namespace Crm.Bench.Tickets;

/// <summary>Command line of the tickets suite; the defaults are the sizes.</summary>
public sealed class Options
{
    /// <summary>Open tickets under SLA seeded before the measurements (none of them due during the run).</summary>
    public int Tickets { get; private set; } = 100_000;
    /// <summary>Overdue tickets added before each measured breach pass (the pass breaches and escalates each).</summary>
    public int Overdue { get; private set; } = 1_000;
    /// <summary>Measured breach passes (each over a fresh overdue batch) and plain-scan repeats; the medians are compared.</summary>
    public int Repeats { get; private set; } = 5;
    /// <summary>Rounds of (pgbench TPC-B, OpenTicket) whose medians are compared.</summary>
    public int Rounds { get; private set; } = 3;
    /// <summary>ListAtRisk: the window asked for and how many calls are timed.</summary>
    public int AtRiskMinutes { get; private set; } = 60;
    public int AtRiskCalls { get; private set; } = 20;
    /// <summary>Breach latency: tickets whose first response falls due in real time, from lead seconds ahead, spread over spread seconds.</summary>
    public int BreachTickets { get; private set; } = 1_000;
    public double BreachLeadSeconds { get; private set; } = 3;
    public double BreachSpreadSeconds { get; private set; } = 10;
    public double BreachWaitSeconds { get; private set; } = 30;
    /// <summary>Tickets:SchedulerInterval of the service in the breach-latency phase, as an operator sets it.</summary>
    public string SchedulerInterval { get; private set; } = "00:00:00.500";
    public int Clients { get; private set; } = 16;
    public int Connections { get; private set; } = 1;
    public double WarmupSeconds { get; private set; } = 3;
    public double DurationSeconds { get; private set; } = 15;
    /// <summary>Longest unmeasured load (breach rounds before the measured passes, OpenTicket before its warm-up) while the JIT is still compiling the service (0: none).</summary>
    public double JitSettleSeconds { get; private set; } = 90;
    public int PgbenchScale { get; private set; } = 16;
    public int PgbenchThreads { get; private set; } = 2;
    public double QuietWaitSeconds { get; private set; } = 15;
    public string ServiceLogLevel { get; private set; } = "Warning";
    public List<string> ServiceArgs { get; private set; } = [];
    public string? Results { get; private set; }
    public string? OutDirectory { get; private set; }
    public bool WriteResults { get; private set; } = true;
    public HashSet<string> Phases { get; private set; } = [.. AllPhases];

    public static readonly string[] AllPhases = ["pass", "at-risk", "open", "latency"];

    public const string Usage = """
        Crm.Bench.Tickets [--tickets 100000] [--overdue 1000] [--repeats 5] [--at-risk-minutes 60] [--at-risk-calls 20]
                          [--breach-tickets 1000] [--breach-lead 3] [--breach-spread 10] [--breach-wait 30]
                          [--scheduler-interval 00:00:00.500] [--clients 16] [--connections 1] [--jit-settle 90] [--warmup 3] [--duration 15] [--rounds 3]
                          [--pgbench-scale 16] [--pgbench-threads 2] [--quiet-wait 15] [--service-log-level Warning]
                          [--service-arg --Key=value ...] [--phases pass,at-risk,open,latency]
                          [--results bench/RESULTS-tickets.md] [--out bench/out] [--no-results]
        Small check: --tickets 1000 --overdue 100 --breach-tickets 100 --duration 3 --pgbench-scale 1 --quiet-wait 2 --no-results
        """;

    public static Options Parse(string[] args)
    {
        var o = new Options();
        for (var i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.\n{Usage}");
            int Int() => int.Parse(Next(), CultureInfo.InvariantCulture);
            double Dbl() => double.Parse(Next(), CultureInfo.InvariantCulture);
            switch (args[i])
            {
                case "--tickets": o.Tickets = Int(); break;
                case "--overdue": o.Overdue = Int(); break;
                case "--repeats": o.Repeats = Int(); break;
                case "--rounds": o.Rounds = Int(); break;
                case "--at-risk-minutes": o.AtRiskMinutes = Int(); break;
                case "--at-risk-calls": o.AtRiskCalls = Int(); break;
                case "--breach-tickets": o.BreachTickets = Int(); break;
                case "--breach-lead": o.BreachLeadSeconds = Dbl(); break;
                case "--breach-spread": o.BreachSpreadSeconds = Dbl(); break;
                case "--breach-wait": o.BreachWaitSeconds = Dbl(); break;
                case "--scheduler-interval": o.SchedulerInterval = TimeSpan.Parse(Next(), CultureInfo.InvariantCulture).ToString("c"); break;
                case "--clients": o.Clients = Int(); break;
                case "--connections": o.Connections = Int(); break;
                case "--warmup": o.WarmupSeconds = Dbl(); break;
                case "--duration": o.DurationSeconds = Dbl(); break;
                case "--jit-settle": o.JitSettleSeconds = Dbl(); break;
                case "--pgbench-scale": o.PgbenchScale = Int(); break;
                case "--pgbench-threads": o.PgbenchThreads = Int(); break;
                case "--quiet-wait": o.QuietWaitSeconds = Dbl(); break;
                case "--service-log-level": o.ServiceLogLevel = Next(); break;
                case "--service-arg": o.ServiceArgs.Add(Next()); break;
                case "--results": o.Results = Next(); break;
                case "--out": o.OutDirectory = Next(); break;
                case "--no-results": o.WriteResults = false; break;
                case "--phases":
                    o.Phases = [.. Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];
                    foreach (var p in o.Phases.Where(p => !AllPhases.Contains(p)))
                        throw new ArgumentException($"Unknown phase '{p}'.\n{Usage}");
                    break;
                case "-h" or "--help": throw new ArgumentException(Usage);
                default: throw new ArgumentException($"Unknown option '{args[i]}'.\n{Usage}");
            }
        }
        if (o.Tickets < 1 || o.Overdue < 1 || o.Repeats < 1 || o.Rounds < 1 || o.AtRiskCalls < 1 || o.BreachTickets < 1 || o.Clients < 1 || o.Connections < 1
            || o.DurationSeconds <= 0 || o.JitSettleSeconds < 0 || o.BreachLeadSeconds < 1 || o.BreachSpreadSeconds <= 0 || o.AtRiskMinutes is < 1 or > 43_200)
            throw new ArgumentException("Sizes, counts and durations must be positive (breach lead at least 1 s).\n" + Usage);
        return o;
    }
}
