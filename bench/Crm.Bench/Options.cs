using System.Globalization;

namespace Crm.Bench;

/// <summary>Command-line settings (<c>--name value</c>); the defaults are the ones bench/run.sh uses.</summary>
public sealed class Options
{
    public int Clients { get; private set; } = 16;
    public int Connections { get; private set; } = 1;
    public double WarmupSeconds { get; private set; } = 3;
    public double DurationSeconds { get; private set; } = 15;
    public int Customers { get; private set; } = 10_000;
    public int PgbenchScale { get; private set; } = 16;
    public int PgbenchThreads { get; private set; } = 2;
    public double LagRate { get; private set; } = 500;
    public double LagSeconds { get; private set; } = 10;
    public double LagWaitSeconds { get; private set; } = 30;
    public string ServiceLogLevel { get; private set; } = "Warning";
    /// <summary>Before each phase, wait at most this long for other processes on the machine to go quiet.</summary>
    public double QuietWaitSeconds { get; private set; } = 15;
    /// <summary>Redeem phase: members that redeem (the first N seeded customers, each granted points first) and goods rewards they spread over.</summary>
    public int RedeemMembers { get; private set; } = 1000;
    public int RedeemRewards { get; private set; } = 4;
    /// <summary>Earn phase: how long to wait for the loyalty service to catch up after the last RecordOrder.</summary>
    public double EarnWaitSeconds { get; private set; } = 60;
    /// <summary>Extra configuration for the service (experiments), e.g. --service-arg --Outbox:BatchSize=50.</summary>
    public List<string> ServiceArgs { get; private set; } = [];
    /// <summary>Appended to the service's connection string (experiments), e.g. "No Reset On Close=true".</summary>
    public string? DbExtra { get; private set; }
    public string? Results { get; private set; }
    public string? OutDirectory { get; private set; }
    public bool WriteResults { get; private set; } = true;
    public HashSet<string> Phases { get; private set; } = [.. AllPhases];
    /// <summary>Export the services' telemetry (traces, logs, metrics) to the dashboard's OTLP receiver, run as
    /// <c>Crm.AppHost otlp-sink</c> in its own process, with the settings the AppHost gives the services.</summary>
    public bool Telemetry { get; private set; }

    public static readonly string[] AllPhases = ["pgbench-select", "echo", "echo-auth", "get", "pgbench-tpcb", "record", "lag", "earn", "redeem"];

    public const string Usage = """
        Crm.Bench [--clients 16] [--connections 1] [--warmup 3] [--duration 15] [--customers 10000]
                  [--pgbench-scale 16] [--pgbench-threads 2] [--lag-rate 500] [--lag-seconds 10] [--lag-wait 30]
                  [--service-log-level Warning] [--quiet-wait 15] [--earn-wait 60] [--redeem-members 1000] [--redeem-rewards 4]
                  [--service-arg --Key=value ...] [--db-extra "No Reset On Close=true"]
                  [--phases pgbench-select,echo,echo-auth,get,pgbench-tpcb,record,lag,earn,redeem]
                  [--results bench/RESULTS.md] [--out bench/out] [--no-results] [--telemetry]
        Crm.Bench compare-telemetry OFF.json ON.json --results bench/RESULTS-telemetry.md
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
                case "--clients": o.Clients = Int(); break;
                case "--connections": o.Connections = Int(); break;
                case "--warmup": o.WarmupSeconds = Dbl(); break;
                case "--duration": o.DurationSeconds = Dbl(); break;
                case "--customers": o.Customers = Int(); break;
                case "--pgbench-scale": o.PgbenchScale = Int(); break;
                case "--pgbench-threads": o.PgbenchThreads = Int(); break;
                case "--lag-rate": o.LagRate = Dbl(); break;
                case "--lag-seconds": o.LagSeconds = Dbl(); break;
                case "--lag-wait": o.LagWaitSeconds = Dbl(); break;
                case "--service-log-level": o.ServiceLogLevel = Next(); break;
                case "--service-arg": o.ServiceArgs.Add(Next()); break;
                case "--db-extra": o.DbExtra = Next(); break;
                case "--quiet-wait": o.QuietWaitSeconds = Dbl(); break;
                case "--earn-wait": o.EarnWaitSeconds = Dbl(); break;
                case "--redeem-members": o.RedeemMembers = Int(); break;
                case "--redeem-rewards": o.RedeemRewards = Int(); break;
                case "--results": o.Results = Next(); break;
                case "--out": o.OutDirectory = Next(); break;
                case "--no-results": o.WriteResults = false; break;
                case "--telemetry": o.Telemetry = true; break;
                case "--phases":
                    o.Phases = [.. Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];
                    foreach (var p in o.Phases.Where(p => !AllPhases.Contains(p)))
                        throw new ArgumentException($"Unknown phase '{p}'.\n{Usage}");
                    break;
                case "-h" or "--help": throw new ArgumentException(Usage);
                default: throw new ArgumentException($"Unknown option '{args[i]}'.\n{Usage}");
            }
        }
        if (o.Clients < 1 || o.Connections < 1 || o.DurationSeconds <= 0 || o.Customers < 1 || o.LagRate <= 0 || o.RedeemMembers < 1 || o.RedeemRewards < 1)
            throw new ArgumentException("clients, connections, duration, customers and lag-rate must be positive.\n" + Usage);
        return o;
    }
}
