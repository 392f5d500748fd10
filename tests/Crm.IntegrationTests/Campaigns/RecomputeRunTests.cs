using System.Globalization;
using Crm.Campaigns.V1;
using Crm.Common.V1;
using Crm.Customer.V1;
using Crm.IntegrationTests.Support;
using Dapper;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;

namespace Crm.IntegrationTests.Campaigns;

/// <summary>
/// RecomputeScores starts the run in the background and answers at once; GetRecomputeRun follows it to FINISHED (or
/// FAILED). The tests hold the recompute's staging lock (the advisory lock StagedScores takes) to keep a run RUNNING for
/// as long as they need it.
/// </summary>
[Collection(SuiteCollection.Name)]
public class RecomputeRunTests(SuiteFixture suite)
{
    private const string StagingLock = "SELECT pg_advisory_lock(hashtext('customer_scores_next'))";
    private const string StagingUnlock = "SELECT pg_advisory_unlock(hashtext('customer_scores_next'))";

    private readonly AnalyticsService.AnalyticsServiceClient _analytics = new(suite.Campaigns.ChannelFor(Crm.ServiceDefaults.Security.Roles.Marketing));

    private Task<RecomputeRun> StartAsync() => _analytics.RecomputeScoresAsync(new RecomputeScoresRequest()).ResponseAsync;

    private Task<RecomputeRun> GetAsync(long id) => _analytics.GetRecomputeRunAsync(new GetRecomputeRunRequest { Id = id }).ResponseAsync;

    private async Task<string> CustomerWithOrderAsync(decimal amount)
    {
        var customers = new CustomerService.CustomerServiceClient(suite.Customer.Channel);
        var tag = "recompute-" + Guid.NewGuid().ToString("N")[..8];
        var profile = new CustomerProfile { Name = "孙悦", Phone = Customer.CustomerProfileTests.UniquePhone(), Region = "苏州" };
        profile.Tags.Add(tag);
        var id = (await customers.CreateCustomerAsync(new CreateCustomerRequest { Profile = profile })).Id;
        var yuan = new Money { Amount = amount.ToString("0.00", CultureInfo.InvariantCulture) };
        var order = new RecordOrderRequest
        {
            CustomerId = id, ExternalOrderId = "RECOMPUTE-" + Guid.NewGuid().ToString("N"), Channel = "store", AmountPaid = yuan,
            PaidAt = Timestamp.FromDateTime(DateTime.UtcNow.AddDays(-3)),
        };
        order.Lines.Add(new OrderLine { Sku = "GOLD-RING", Quantity = 1, UnitPrice = yuan });
        await customers.RecordOrderAsync(order);
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            try
            {
                var live = await _analytics.GetCustomerAnalyticsAsync(new GetCustomerAnalyticsRequest { CustomerId = id, PopulationTag = tag });
                if (live.OrderCount == 1) return id;
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.NotFound) { }
            Assert.True(DateTime.UtcNow < deadline, "the order did not reach the read model");
            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task A_recompute_answers_at_once_and_is_polled_to_FINISHED_with_every_customer_scored()
    {
        var customer = await CustomerWithOrderAsync(2_800m);
        int known;
        await using (var db = await suite.CampaignsDb.OpenConnectionAsync())
            known = await db.ExecuteScalarAsync<int>("SELECT count(*) FROM customers");

        var finished = await Recompute.RunAsync(_analytics);
        var polled = await GetAsync(finished.Id);
        Assert.Equal((RecomputeState.Finished, finished.Customers, finished.FinishedAt, ""), (polled.State, polled.Customers, polled.FinishedAt, polled.Error));
        Assert.True(polled.FinishedAt.ToDateTime() >= polled.StartedAt.ToDateTime());
        Assert.Equal(polled.StartedAt, polled.AsOf); // scored as of the moment it started
        Assert.True(polled.Models.Fitted || polled.FitSample == 0);

        await using (var db = await suite.CampaignsDb.OpenConnectionAsync())
        {
            // Every customer the read model knew when it started, each once, all under this run's id.
            Assert.Equal(polled.Customers, await db.ExecuteScalarAsync<int>("SELECT count(*) FROM customer_scores WHERE run_id = @id", new { id = polled.Id }));
            Assert.True(polled.Customers >= known, $"{polled.Customers} scored, {known} known before the run");
        }
        var stored = await _analytics.GetCustomerAnalyticsAsync(new GetCustomerAnalyticsRequest { CustomerId = customer });
        Assert.Equal((polled.Id, 1, "2800.00"), (stored.RecomputeRunId, stored.OrderCount, stored.NetSpend.Amount));

        var unknown = await Assert.ThrowsAsync<RpcException>(() => _analytics.GetRecomputeRunAsync(new GetRecomputeRunRequest { Id = polled.Id + 1_000_000 }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, unknown.StatusCode);
        var invalid = await Assert.ThrowsAsync<RpcException>(() => _analytics.GetRecomputeRunAsync(new GetRecomputeRunRequest { Id = 0 }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, invalid.StatusCode);
        Assert.Contains("id", invalid.Status.Detail + invalid.Trailers.ToString(), StringComparison.Ordinal);
        var sales = new AnalyticsService.AnalyticsServiceClient(suite.Campaigns.ChannelFor(Crm.ServiceDefaults.Security.Roles.Sales));
        var denied = await Assert.ThrowsAsync<RpcException>(() => sales.GetRecomputeRunAsync(new GetRecomputeRunRequest { Id = polled.Id }).ResponseAsync);
        Assert.Equal(StatusCode.PermissionDenied, denied.StatusCode);
    }

    [Fact]
    public async Task A_second_call_while_a_run_is_running_answers_that_run_and_the_next_call_starts_a_new_one()
    {
        await using var holder = await suite.CampaignsDb.OpenConnectionAsync();
        await holder.ExecuteAsync(StagingLock);
        long id;
        try
        {
            // Both calls return while the test holds the lock the run needs: neither waits for the run.
            var first = await StartAsync();
            var second = await StartAsync();
            Assert.Equal((RecomputeState.Running, RecomputeState.Running), (first.State, second.State));
            Assert.Equal((first.Id, first.StartedAt), (second.Id, second.StartedAt));
            Assert.Null(second.FinishedAt);
            Assert.Equal(0, second.Customers);
            // Ten calls at once while it runs: the same run, every one of them.
            var parallel = await Task.WhenAll(Enumerable.Range(0, 10).Select(_ => _analytics.RecomputeScoresAsync(new RecomputeScoresRequest()).ResponseAsync));
            Assert.All(parallel, p => Assert.Equal((first.Id, RecomputeState.Running), (p.Id, p.State)));
            var polled = await GetAsync(first.Id);
            Assert.Equal(RecomputeState.Running, polled.State);
            id = first.Id;
        }
        finally
        {
            await holder.ExecuteAsync(StagingUnlock);
        }

        var done = await Recompute.WaitAsync(_analytics, id, DateTime.UtcNow.AddMinutes(2));
        Assert.Equal(RecomputeState.Finished, done.State);
        var next = await StartAsync();
        Assert.True(next.Id > id, $"{next.Id} after {id}");
        Assert.Equal(RecomputeState.Finished, (await Recompute.WaitAsync(_analytics, next.Id, DateTime.UtcNow.AddMinutes(2))).State);
    }

    [Fact]
    public async Task A_failing_run_is_FAILED_with_its_error_logged_and_the_previous_scores_stay_live()
    {
        var before = await Recompute.RunAsync(_analytics);
        await using var holder = await suite.CampaignsDb.OpenConnectionAsync();
        await holder.ExecuteAsync(StagingLock);
        long id;
        try
        {
            var run = await StartAsync();
            id = run.Id;
            // A view where the run stages its rows: its DROP TABLE fails once the lock is free.
            await holder.ExecuteAsync("CREATE VIEW customer_scores_next AS SELECT 1 AS x");
        }
        finally
        {
            await holder.ExecuteAsync(StagingUnlock);
        }
        RecomputeRun failed;
        try
        {
            failed = await Recompute.WaitAsync(_analytics, id, DateTime.UtcNow.AddMinutes(2));
        }
        finally
        {
            await holder.ExecuteAsync("DROP VIEW IF EXISTS customer_scores_next");
        }

        Assert.Equal(RecomputeState.Failed, failed.State);
        Assert.Contains("customer_scores_next", failed.Error, StringComparison.Ordinal);
        Assert.Null(failed.FinishedAt);
        Assert.Contains(LogCapture.Instance.Lines, l => l.StartsWith("Error Crm.Campaigns.Analytics.ScoreRecompute", StringComparison.Ordinal)
            && l.Contains($"Recompute {id} failed", StringComparison.Ordinal) && l.Contains("customer_scores_next", StringComparison.Ordinal));
        Assert.Equal(RecomputeState.Failed, (await GetAsync(id)).State);
        // The previous run still answers "as of now".
        await using (var db = await suite.CampaignsDb.OpenConnectionAsync())
            Assert.Equal(before.Id, await db.ExecuteScalarAsync<long>("SELECT max(run_id) FROM customer_scores"));

        var after = await Recompute.RunAsync(_analytics);
        Assert.True(after.Id > id);
    }
}
