using System.Globalization;

namespace Crm.Bench.Partner;

/// <summary>Command-line settings (<c>--name value</c>); the defaults are the sizes, used by bench/run.sh.</summary>
public sealed class Options
{
    public int Orders { get; private set; } = 1_000_000;
    public int Customers { get; private set; } = 100_000;
    /// <summary>Share of the orders naming their customer by the partner's id (customer_ref) instead of the suite's id.</summary>
    public double RefShare { get; private set; } = 0.5;
    public int Seed { get; private set; } = 13;
    public double LagRate { get; private set; } = 1000;
    /// <summary>
    /// What records the lag phase's orders: "import" (one ImportOrders stream, an item per tick) or "record" (a RecordOrder
    /// call per tick). Import by default: RecordOrder's own capacity on 2 cores (~700-800 calls/s, bench/RESULTS.md) is
    /// below 1,000/s, and a saturated writer would measure its queue, not the feed.
    /// </summary>
    public string LagSource { get; private set; } = "import";
    public double LagSeconds { get; private set; } = 30;
    public double LagWarmupSeconds { get; private set; } = 3;
    public double LagWaitSeconds { get; private set; } = 30;
    public double QuietWaitSeconds { get; private set; } = 15;
    public string ServiceLogLevel { get; private set; } = "Warning";
    public string? Results { get; private set; }
    public string? OutDirectory { get; private set; }
    public bool WriteResults { get; private set; } = true;

    public const string Usage = """
        Crm.Bench.Partner [--orders 1000000] [--customers 100000] [--ref-share 0.5] [--seed 13]
                          [--lag-rate 1000] [--lag-source import|record] [--lag-seconds 30] [--lag-warmup 3] [--lag-wait 30]
                          [--quiet-wait 15] [--service-log-level Warning]
                          [--results bench/RESULTS-partner.md] [--out bench/out] [--no-results]
          Streams --orders generated orders (fixed seed) through crm.customer.v1.CustomerImport/ImportOrders and
          compares the rate with binary COPY of the same rows into a table shaped like orders, in the same run;
          samples the process's memory every second during the stream; measures change-feed delivery lag
          (WatchChanges) while RecordOrder runs paced at --lag-rate per second.
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
                case "--orders": o.Orders = Int(); break;
                case "--customers": o.Customers = Int(); break;
                case "--ref-share": o.RefShare = Dbl(); break;
                case "--seed": o.Seed = Int(); break;
                case "--lag-rate": o.LagRate = Dbl(); break;
                case "--lag-seconds": o.LagSeconds = Dbl(); break;
                case "--lag-source": o.LagSource = Next(); break;
                case "--lag-warmup": o.LagWarmupSeconds = Dbl(); break;
                case "--lag-wait": o.LagWaitSeconds = Dbl(); break;
                case "--quiet-wait": o.QuietWaitSeconds = Dbl(); break;
                case "--service-log-level": o.ServiceLogLevel = Next(); break;
                case "--results": o.Results = Next(); break;
                case "--out": o.OutDirectory = Next(); break;
                case "--no-results": o.WriteResults = false; break;
                case "-h" or "--help": throw new HelpRequested(Usage);
                default: throw new ArgumentException($"Unknown option '{args[i]}'.\n{Usage}");
            }
        }
        if (o.LagSource is not ("import" or "record")) throw new ArgumentException("--lag-source is import or record.\n" + Usage);
        if (o.Orders < 1 || o.Customers < 1 || o.RefShare is < 0 or > 1 || o.LagRate <= 0 || o.LagSeconds <= 0)
            throw new ArgumentException("orders, customers, lag-rate and lag-seconds must be positive, ref-share within 0..1.\n" + Usage);
        return o;
    }
}

public sealed class HelpRequested(string usage) : Exception(usage);
