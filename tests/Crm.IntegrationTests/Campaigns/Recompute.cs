using Crm.Campaigns.V1;

namespace Crm.IntegrationTests.Campaigns;

/// <summary>RecomputeScores starts a run in the background; these wait for one.</summary>
public static class Recompute
{
    /// <summary>
    /// A run that started after this call, waited for until FINISHED: a run already running (which RecomputeScores
    /// returns instead of starting one) may predate the caller's data, so it is waited out and the call repeated.
    /// </summary>
    public static async Task<RecomputeRun> RunAsync(AnalyticsService.AnalyticsServiceClient analytics, bool refitModels = false)
    {
        var now = DateTime.UtcNow;
        var asked = now.AddTicks(-(now.Ticks % 10)); // the service keeps microseconds
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (true)
        {
            var started = await analytics.RecomputeScoresAsync(new RecomputeScoresRequest { RefitModels = refitModels });
            var done = await WaitAsync(analytics, started.Id, deadline);
            if (started.StartedAt.ToDateTime() < asked) continue;
            Assert.True(done.State == RecomputeState.Finished, $"recompute {done.Id} ended {done.State}: {done.Error}");
            return done;
        }
    }

    /// <summary>Polls GetRecomputeRun until the run is no longer RUNNING.</summary>
    public static async Task<RecomputeRun> WaitAsync(AnalyticsService.AnalyticsServiceClient analytics, long id, DateTime deadline)
    {
        while (true)
        {
            var run = await analytics.GetRecomputeRunAsync(new GetRecomputeRunRequest { Id = id });
            if (run.State != RecomputeState.Running) return run;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"recompute {id} still running");
            await Task.Delay(50);
        }
    }
}
