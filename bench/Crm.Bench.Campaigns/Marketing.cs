using System.Diagnostics;
using Crm.Campaigns.V1;
using Crm.Contracts;
using Crm.Customer.V1;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Crm.Bench.Campaigns;

public sealed record SegmentFigures(double CountSeconds, double CountWarmSeconds, long Count, string CountRules, double SnapshotSeconds, long SnapshotMembers,
    string SnapshotRule);

/// <summary>
/// Issue 11's figures on the same data: a segment count with four rules, a frozen snapshot of a tenth of the customers
/// (100,000 at the size), and a tier-welcome campaign's send after its TierChanged (see <see cref="TriggerAsync"/>).
/// </summary>
public static class Marketing
{
    private static SegmentRule Rule(SegmentField field, SegmentOperator op, params string[] values)
    {
        var rule = new SegmentRule { Field = field, Op = op };
        rule.Values.AddRange(values);
        return rule;
    }

    public static async Task<SegmentFigures> SegmentsAsync(SegmentService.SegmentServiceClient segments, string campaignsDb, CancellationToken ct)
    {
        // Four rules: tier S3 or higher, RFM recency 4-5, marketing consent, two regions.
        var four = new SegmentRule();
        four.All.Add(Rule(SegmentField.Tier, SegmentOperator.In, "S3", "S4", "S5", "S6"));
        four.All.Add(new SegmentRule { Field = SegmentField.RfmR, Op = SegmentOperator.Range, Min = "4", Max = "5" });
        four.All.Add(Rule(SegmentField.MarketingConsent, SegmentOperator.IsTrue));
        four.All.Add(Rule(SegmentField.Region, SegmentOperator.In, "华东", "华南"));
        var watch = Stopwatch.StartNew();
        await segments.CountSegmentAsync(new CountSegmentRequest { Rules = four }, deadline: DateTime.UtcNow.AddMinutes(5), cancellationToken: ct);
        var warm = watch.Elapsed.TotalSeconds;
        watch.Restart();
        var count = await segments.CountSegmentAsync(new CountSegmentRequest { Rules = four }, deadline: DateTime.UtcNow.AddMinutes(5), cancellationToken: ct);
        var countSeconds = watch.Elapsed.TotalSeconds;

        // The customers most likely still active, as many as a tenth of all customers: P(active) of the stored scores at or
        // above the threshold that leaves that many. (A rule on net spend or order count would be evaluated over a live
        // aggregate of every order instead — see the report's notes.)
        double threshold;
        await using (var connection = new NpgsqlConnection(campaignsDb))
        {
            await connection.OpenAsync(ct);
            await using var command = new NpgsqlCommand("""
                SELECT p_active FROM customer_scores WHERE p_active IS NOT NULL ORDER BY p_active DESC
                OFFSET (SELECT count(*) / 10 - 1 FROM customer_scores) LIMIT 1
                """, connection);
            threshold = Math.Floor((double)(await command.ExecuteScalarAsync(ct))! * 1e6) / 1e6;
        }
        var top = new SegmentRule
        {
            Field = SegmentField.PActive, Op = SegmentOperator.Range, Min = threshold.ToString("0.000000", System.Globalization.CultureInfo.InvariantCulture),
        };
        var segment = await segments.CreateSegmentAsync(new CreateSegmentRequest { Name = "bench likely active", Rules = top, IdempotencyKey = "bench-likely-active" },
            cancellationToken: ct);
        watch.Restart();
        var snapshot = await segments.SnapshotSegmentAsync(new SnapshotSegmentRequest
            { SegmentId = segment.SegmentId, Purpose = "bench", IdempotencyKey = "bench-snapshot-" + Guid.NewGuid().ToString("N") },
            deadline: DateTime.UtcNow.AddMinutes(5), cancellationToken: ct);
        var snapshotSeconds = watch.Elapsed.TotalSeconds;
        return new SegmentFigures(countSeconds, warm, count.Count, "tier ∈ {S3..S6} AND RFM R 4-5 AND consent AND region ∈ {华东, 华南}", snapshotSeconds,
            snapshot.MemberCount, $"P(active) ≥ {threshold:0.000000} (a tenth of the customers)");
    }

    /// <summary>
    /// A running tier-welcome campaign (app push, no segment), then TierChanged S1 → S2 for distinct customers with consent at
    /// <paramref name="rate"/>; an event has arrived when its customer's delivery is 'sent' (the message rendered with the
    /// name the dispatcher asked the customer service for, and logged). The measured events follow <see cref="WarmUp"/> of
    /// the same load on other customers, drained before the clock starts: the first seconds of a new send path in a fresh
    /// process are JIT and tier-up work (a sampled profile of them is three quarters JIT and runtime), which the steady-state
    /// figure leaves out; the warm-up's own figures are reported beside it.
    /// </summary>
    public static async Task<(LagResult, string Statuses)> TriggerAsync(CampaignService.CampaignServiceClient campaigns, string amqp, string campaignsDb, double rate,
        TimeSpan duration, CpuMeter cpu, CancellationToken ct)
    {
        var campaign = await campaigns.CreateCampaignAsync(new CreateCampaignRequest
        {
            Name = "bench tier welcome", Kind = CampaignKind.TierWelcome, Channel = CampaignChannel.AppPush, Template = "{name}，欢迎升级为 {tier} 会员",
            Schedule = new CampaignSchedule { Kind = ScheduleKind.OnEvent }, IdempotencyKey = "bench-tier-welcome-" + Guid.NewGuid().ToString("N"),
        }, cancellationToken: ct);
        campaign = await campaigns.ChangeCampaignStateAsync(new ChangeCampaignStateRequest
            { CampaignId = campaign.CampaignId, Version = campaign.Version, State = CampaignState.Scheduled }, cancellationToken: ct);
        campaign = await campaigns.ChangeCampaignStateAsync(new ChangeCampaignStateRequest
            { CampaignId = campaign.CampaignId, Version = campaign.Version, State = CampaignState.Running }, cancellationToken: ct);

        var warmUp = (int)Math.Round(rate * WarmUp.TotalSeconds) + 1;
        var needed = (int)Math.Round(rate * duration.TotalSeconds) + 1 + warmUp;
        var customers = new List<Guid>(needed);
        await using (var connection = new NpgsqlConnection(campaignsDb))
        {
            await connection.OpenAsync(ct);
            await using var command = new NpgsqlCommand("SELECT customer_id FROM customers WHERE marketing_consent ORDER BY customer_id DESC LIMIT $1", connection)
            {
                Parameters = { new() { Value = needed } },
            };
            await using var reader = await command.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct)) customers.Add(reader.GetGuid(0));
        }
        if (customers.Count < needed) throw new InvalidOperationException($"Only {customers.Count} customers with consent for {needed} TierChanged events.");
        var campaignId = Guid.Parse(campaign.CampaignId);
        var arrivedSql = $"SELECT customer_id FROM campaign_deliveries WHERE campaign_id = '{campaignId}' AND status = 'sent' AND customer_id = ANY ($1)";
        (Guid, object) Upgrade(int k) => (customers[k], new TierChanged(customers[k], "S1", "S2", 20_000, "bench", DateTimeOffset.UtcNow, 1_000_000 + k));
        var warm = await Lag.RunAsync(amqp, campaignsDb, rate, WarmUp, cpu, i => Upgrade(needed - warmUp + i), arrivedSql, ct);
        var lag = await Lag.RunAsync(amqp, campaignsDb, rate, duration, cpu, Upgrade, arrivedSql, ct);
        // What became of the events that were not sent (deferred, capped, no consent), if any.
        await using var db = new NpgsqlConnection(campaignsDb);
        await db.OpenAsync(ct);
        await using var statuses = new NpgsqlCommand(
            $"SELECT coalesce(string_agg(status || ' ' || n, ', ' ORDER BY status), 'none') FROM (SELECT status, count(*) AS n FROM campaign_deliveries WHERE campaign_id = '{campaignId}' GROUP BY status) s", db);
        var warmUpFigures = $"the {warm.Sent:N0} warm-up events before, cold: p50 {warm.Lag.P50:0.0} ms, p99 {warm.Lag.P99:0.0} ms, max {warm.Lag.Max:0.0} ms, " +
            $"{warm.Arrived:N0} sent, machine busy {warm.Cpu.BusyCores:0.00} cores";
        return (lag, (string)(await statuses.ExecuteScalarAsync(ct))! + "; " + warmUpFigures);
    }

    /// <summary>Unmeasured load at the trigger rate before the measured events (see <see cref="TriggerAsync"/>).</summary>
    public static readonly TimeSpan WarmUp = TimeSpan.FromSeconds(3);

    /// <summary>
    /// A stand-in for the customer service's GetCustomer (the only call the dispatcher makes): the data here lives in the
    /// campaign service's read model only, so there is no customer database to serve from. It answers at once, so the
    /// trigger figure leaves out the real service's GetCustomer time (bench/RESULTS.md measures that: a few ms at p99).
    /// </summary>
    public static async Task<WebApplication> StartCustomerStandInAsync(int port, CancellationToken ct)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.ListenLocalhost(port, o => o.Protocols = HttpProtocols.Http2));
        builder.Services.AddGrpc();
        var app = builder.Build();
        app.MapGrpcService<CustomerStandIn>();
        await app.StartAsync(ct);
        return app;
    }

    private sealed class CustomerStandIn : CustomerService.CustomerServiceBase
    {
        public override Task<Crm.Customer.V1.Customer> GetCustomer(GetCustomerRequest request, ServerCallContext context) =>
            Task.FromResult(new Crm.Customer.V1.Customer { Id = request.Id, Profile = new CustomerProfile { Name = "顾客" + request.Id[..4] }, Version = 1 });
    }
}
