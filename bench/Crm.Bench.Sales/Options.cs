using System.Globalization;

namespace Crm.Bench.Sales;

/// <summary>Command-line settings (<c>--name value</c>); the defaults are the sizes.</summary>
public sealed class Options
{
    public int Opportunities { get; private set; } = 100_000;
    public int Owners { get; private set; } = 200;
    /// <summary>Owners are spread over this many teams (owner_team), ten salespeople each by default.</summary>
    public int Teams { get; private set; } = 20;
    public int HistoryDays { get; private set; } = 730;
    /// <summary>Report phase: rounds measured (each round: the scan and the four reports once), after warm-up rounds.</summary>
    public int Rounds { get; private set; } = 30;
    public int WarmupRounds { get; private set; } = 3;
    public int Clients { get; private set; } = 16;
    public int Connections { get; private set; } = 1;
    public double WarmupSeconds { get; private set; } = 3;
    public double DurationSeconds { get; private set; } = 15;
    public int PgbenchScale { get; private set; } = 16;
    public int PgbenchThreads { get; private set; } = 2;
    public string ServiceLogLevel { get; private set; } = "Warning";
    public double QuietWaitSeconds { get; private set; } = 15;
    public List<string> ServiceArgs { get; private set; } = [];
    public string? Results { get; private set; }
    public string? OutDirectory { get; private set; }
    public bool WriteResults { get; private set; } = true;
    public HashSet<string> Phases { get; private set; } = [.. AllPhases];

    public static readonly string[] AllPhases = ["reports", "pgbench-tpcb", "move"];

    public const string Usage = """
        Crm.Bench.Sales [--opportunities 100000] [--owners 200] [--teams 20] [--history-days 730]
                        [--rounds 30] [--warmup-rounds 3]
                        [--clients 16] [--connections 1] [--warmup 3] [--duration 15] [--pgbench-scale 16] [--pgbench-threads 2]
                        [--service-log-level Warning] [--quiet-wait 15] [--service-arg --Key=value ...]
                        [--phases reports,pgbench-tpcb,move] [--results bench/RESULTS-sales.md] [--out bench/out] [--no-results]
        Small validation run: --opportunities 1000 --owners 20 --teams 2 --rounds 5 --duration 3 --pgbench-scale 1
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
                case "--opportunities": o.Opportunities = Int(); break;
                case "--owners": o.Owners = Int(); break;
                case "--teams": o.Teams = Int(); break;
                case "--history-days": o.HistoryDays = Int(); break;
                case "--rounds": o.Rounds = Int(); break;
                case "--warmup-rounds": o.WarmupRounds = Int(); break;
                case "--clients": o.Clients = Int(); break;
                case "--connections": o.Connections = Int(); break;
                case "--warmup": o.WarmupSeconds = Dbl(); break;
                case "--duration": o.DurationSeconds = Dbl(); break;
                case "--pgbench-scale": o.PgbenchScale = Int(); break;
                case "--pgbench-threads": o.PgbenchThreads = Int(); break;
                case "--service-log-level": o.ServiceLogLevel = Next(); break;
                case "--service-arg": o.ServiceArgs.Add(Next()); break;
                case "--quiet-wait": o.QuietWaitSeconds = Dbl(); break;
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
        if (o.Opportunities < 1 || o.Owners < 1 || o.Teams < 1 || o.HistoryDays < 30 || o.Rounds < 1 || o.WarmupRounds < 0
            || o.Clients < 1 || o.Connections < 1 || o.DurationSeconds <= 0 || o.PgbenchScale < 1)
            throw new ArgumentException("Sizes, rounds, clients and duration must be positive (history-days at least 30).\n" + Usage);
        return o;
    }
}
