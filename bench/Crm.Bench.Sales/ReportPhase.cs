using System.Diagnostics;
using Crm.Sales.V1;
using Google.Protobuf;
using Npgsql;

namespace Crm.Bench.Sales;

/// <summary>
/// The report figures: rounds of one plain aggregate scan of the opportunities table (the ceiling) and the four
/// report RPCs, one call at a time, interleaved so that noise on a shared machine hits scan and reports alike.
/// Each round asks for another owner.
/// </summary>
public static class ReportPhase
{
    public const string ScanSql = "SELECT count(*), sum(amount) FROM opportunities";

    public static async Task<ReportPhaseResult> RunAsync(SalesService.SalesServiceClient client, NpgsqlDataSource db, string[] owners,
        int rounds, int warmupRounds, CpuMeter cpu, CancellationToken ct)
    {
        var random = new Random(11);
        var deadline = TimeSpan.FromSeconds(60);
        var sizes = new int[5];
        (string Name, string What, Func<string, Task> Call)[] steps =
        [
            ("scan", $"`{ScanSql}` (Npgsql, same server)", async _ =>
            {
                await using var command = db.CreateCommand(ScanSql);
                await using var reader = await command.ExecuteReaderAsync(ct);
                while (await reader.ReadAsync(ct)) { }
            }),
            ("GetForecast, one owner", "weighted pipeline by month and quarter", async owner => sizes[1] =
                (await client.GetForecastAsync(new GetForecastRequest { OwnerId = owner }, deadline: DateTime.UtcNow + deadline, cancellationToken: ct)).CalculateSize()),
            // As a manager's dashboard asks for everyone: the totals (totals_only); one salesperson's breakdown is the call above.
            ("GetForecast, everyone", "weighted pipeline by month and quarter, total (totals_only)", async _ => sizes[2] =
                (await client.GetForecastAsync(new GetForecastRequest { TotalsOnly = true }, deadline: DateTime.UtcNow + deadline, cancellationToken: ct)).CalculateSize()),
            ("GetPipelineReport, one owner", "win rate, stage conversion, sales cycle, open pipeline", async owner => sizes[3] =
                (await client.GetPipelineReportAsync(new GetPipelineReportRequest { OwnerId = owner }, deadline: DateTime.UtcNow + deadline, cancellationToken: ct)).CalculateSize()),
            ("GetPipelineReport, everyone", "win rate, stage conversion, sales cycle, open pipeline", async _ => sizes[4] =
                (await client.GetPipelineReportAsync(new GetPipelineReportRequest(), deadline: DateTime.UtcNow + deadline, cancellationToken: ct)).CalculateSize()),
        ];
        var ticks = steps.Select(_ => new List<long>(rounds)).ToArray();
        CpuMeter.Sample? before = null;
        for (var round = 0; round < warmupRounds + rounds; round++)
        {
            if (round == warmupRounds) before = cpu.Snapshot();
            var owner = owners[random.Next(owners.Length)];
            for (var s = 0; s < steps.Length; s++)
            {
                var t0 = Stopwatch.GetTimestamp();
                await steps[s].Call(owner);
                if (round >= warmupRounds) ticks[s].Add(Stopwatch.GetTimestamp() - t0);
            }
        }
        var usage = cpu.Snapshot() - before!;
        var timings = steps.Select((s, i) => new ReportTiming(s.Name, s.What, Latency.FromTicks(ticks[i]), ResponseBytes: sizes[i])).ToList();
        return new ReportPhaseResult(rounds, warmupRounds, timings[0], timings.Skip(1).ToList(), usage);
    }
}
