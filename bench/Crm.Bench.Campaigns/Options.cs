using System.Globalization;

namespace Crm.Bench.Campaigns;

/// <summary>Command line of the campaigns suite; the defaults are the sizes.</summary>
public sealed class Options
{
    public string? Results { get; private set; }
    public string? OutDirectory { get; private set; }
    public int Customers { get; private set; } = 1_000_000;
    public int Orders { get; private set; } = 10_000_000;
    public int Seed { get; private set; } = 20_261_126;
    public double LagRate { get; private set; } = 500;
    public double LagSeconds { get; private set; } = 30;
    public double TriggerRate { get; private set; } = 500;
    /// <summary>--orderpaid-single: the service consumes OrderPaid one message per transaction (Campaigns:OrderPaidBatches=false), for an A/B.</summary>
    public bool OrderPaidSingle { get; private set; }
    public double TriggerSeconds { get; private set; } = 30;
    public int FitSample { get; private set; } = 10_000;
    public string WorkMem { get; private set; } = "256MB";
    public double MaxQuietWaitSeconds { get; private set; } = 60;
    public double QuietCores { get; private set; } = 0.3;
    /// <summary>generate: only load the synthetic data into the database of --connection, then exit.</summary>
    public bool GenerateOnly { get; private set; }
    public string? Connection { get; private set; }
    /// <summary>--recompute-only N: after the ceiling, N recomputes in a row and nothing else (phase timings at a size; no results file).</summary>
    public int RecomputeOnly { get; private set; }
    /// <summary>--rounds N: rounds of (ceiling scan, recompute); the figures are the medians (one sample swung 2.4-4.0 x on this machine).</summary>
    public int Rounds { get; private set; } = 3;
    /// <summary>--compare-dll PATH (with --recompute-only): before each recompute, one by another build of the service on the same data.</summary>
    public string? CompareDll { get; private set; }

    public const string Help = """
        Crm.Bench.Campaigns — the campaign service's analytics at scale (issue 10).

          dotnet Crm.Bench.Campaigns.dll [options]             run the suite, write the results file and bench/out/campaigns-<run>.json
          dotnet Crm.Bench.Campaigns.dll generate --connection "Host=…;Database=campaignsdb;…" [--customers N] [--orders N] [--seed N]
                                                               only load the synthetic data (COPY) into an existing campaignsdb

          --results FILE        markdown results (default bench/RESULTS-campaigns.md)
          --out DIR             JSON output folder (default bench/out)
          --customers N         synthetic customers (default 1,000,000)
          --orders N            synthetic orders (default 10,000,000)
          --seed N              generator seed (default 20261126)
          --lag-rate R          OrderPaid events per second in the lag phase (default 500)
          --lag-seconds S       length of the lag phase (default 30)
          --trigger-rate R      TierChanged events per second in the tier-welcome phase (default 500)
          --trigger-seconds S   length of the tier-welcome phase (default 30)
          --orderpaid-single    the service consumes OrderPaid one per transaction instead of in batches (A/B of the lag)
          --fit-sample N        buyers the models are fitted on (Campaigns:Recompute:FitSampleSize, default 10,000)
          --work-mem SIZE       work_mem of the ceiling scan (the recompute sets the same; default 256MB)
          --quiet-cores C       wait before each phase for a second with other load below C cores (default 0.3) …
          --max-quiet-wait S    … but at most S seconds (default 60)
          --rounds N            rounds of (ceiling scan, recompute) whose medians are the figures (default 3)
          --recompute-only N    after the ceiling only N recomputes, one after the other (see the service log); no results file
          --compare-dll PATH    with --recompute-only: before each of them one recompute by another build (A/B, interleaved)
          --help
        Small trial: --customers 10000 --orders 100000 --lag-seconds 5 --trigger-seconds 5
        """;

    public static Options Parse(string[] args)
    {
        var o = new Options();
        var i = 0;
        if (args.Length > 0 && args[0] == "generate") { o.GenerateOnly = true; i = 1; }
        for (; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
            int Int() => int.TryParse(Next(), NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v > 0 ? v
                : throw new ArgumentException($"{args[i - 1]} needs a positive whole number.");
            double Real() => double.TryParse(Next(), NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v > 0 ? v
                : throw new ArgumentException($"{args[i - 1]} needs a positive number.");
            switch (args[i])
            {
                case "--results": o.Results = Next(); break;
                case "--out": o.OutDirectory = Next(); break;
                case "--customers": o.Customers = Int(); break;
                case "--orders": o.Orders = Int(); break;
                case "--seed": o.Seed = Int(); break;
                case "--lag-rate": o.LagRate = Real(); break;
                case "--lag-seconds": o.LagSeconds = Real(); break;
                case "--trigger-rate": o.TriggerRate = Real(); break;
                case "--trigger-seconds": o.TriggerSeconds = Real(); break;
                case "--orderpaid-single": o.OrderPaidSingle = true; break;
                case "--fit-sample": o.FitSample = Int(); break;
                case "--work-mem": o.WorkMem = Next(); break;
                case "--quiet-cores": o.QuietCores = Real(); break;
                case "--max-quiet-wait": o.MaxQuietWaitSeconds = Real(); break;
                case "--connection": o.Connection = Next(); break;
                case "--recompute-only": o.RecomputeOnly = Int(); break;
                case "--rounds": o.Rounds = Int(); break;
                case "--compare-dll": o.CompareDll = Next(); break;
                case "--help" or "-h": throw new HelpRequested();
                default: throw new ArgumentException($"Unknown option {args[i]}.\n\n{Help}");
            }
        }
        if (o.GenerateOnly && o.Connection is null) throw new ArgumentException("generate needs --connection.");
        if (o.Orders < o.Customers / 2) throw new ArgumentException("--orders should be at least half of --customers.");
        return o;
    }

    public sealed class HelpRequested : Exception;
}
