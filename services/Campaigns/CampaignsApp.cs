using Crm.Campaigns.Analytics;
using Crm.Campaigns.Grpc;
using Crm.Campaigns.Marketing;
using Crm.Campaigns.ReadModel;
using Crm.Campaigns.Reports;
using Crm.Campaigns.Segments;
using Crm.Customer.V1;
using Crm.ServiceDefaults.Security;
using Microsoft.Extensions.Options;

namespace Crm.Campaigns;

/// <summary>Composition of the campaign service; tests build the same app on real infrastructure.</summary>
public static class CampaignsApp
{
    public static WebApplication Build(string[] args, Action<IServiceCollection>? overrides = null)
    {
        Dapper.DefaultTypeMap.MatchNamesWithUnderscores = true;
        var builder = WebApplication.CreateBuilder(args);
        builder.AddServiceDefaults();
        builder.AddNpgsqlDataSource("campaignsdb");
        builder.AddDatabaseMigrations(typeof(CampaignsApp).Assembly);
        builder.AddMessaging("messaging", bus =>
        {
            bus.AddConsumer<CustomerRegisteredConsumer>();
            bus.AddConsumer<CustomerUpdatedConsumer>();
            // OrderPaid in batches (falling back to OrderPaidConsumer per message), or one at a time with Campaigns:OrderPaidBatches=false.
            if (builder.Configuration.GetValue("Campaigns:OrderPaidBatches", true)) bus.AddConsumer<OrderPaidBatchConsumer>(typeof(OrderPaidBatchConsumerDefinition));
            else bus.AddConsumer<OrderPaidConsumer>();
            bus.AddConsumer<OrderRefundedConsumer>();
            // TierChanged into the read model in batches (falling back to TierChangedConsumer per message), or one at a time with Campaigns:TierChangedBatches=false.
            if (builder.Configuration.GetValue("Campaigns:TierChangedBatches", true)) bus.AddConsumer<TierChangedBatchConsumer>(typeof(TierChangedBatchConsumerDefinition));
            else bus.AddConsumer<TierChangedConsumer>();
            bus.AddConsumer<PointsEarnedConsumer>();
            bus.AddConsumer<PointsDeductedConsumer>();
            bus.AddConsumer<PointsRedeemedConsumer>();
            bus.AddConsumer<PointsExpiredConsumer>();
            bus.AddConsumer<PointsClawedBackConsumer>();
            // TierChanged → tier-welcome sends in batches (falling back to TierWelcomeConsumer per message), or one at a time with Marketing:TierWelcome:Batches=false.
            if (builder.Configuration.GetValue("Marketing:TierWelcome:Batches", true)) bus.AddConsumer<TierWelcomeBatchConsumer>(typeof(TierWelcomeBatchConsumerDefinition));
            else bus.AddConsumer<TierWelcomeConsumer>(typeof(TierWelcomeConsumerDefinition));
            bus.AddConsumer<CouponUsedConsumer>();
        });
        builder.AddGrpcDefaults();
        // The rebuild's source: the customer service, called as this service (role system), with a deadline per call.
        builder.AddServiceClient<CustomerService.CustomerServiceClient>("customer");
        // The loyalty service: a campaign's coupons (GrantReward, GetReward) and whose points expire soon (ListExpiringPoints),
        // called as this service (role system) with a deadline per call (discovery: services__loyalty__http__0).
        builder.AddServiceClient<Crm.Loyalty.V1.LoyaltyService.LoyaltyServiceClient>("loyalty");

        builder.Services.AddOptions<CampaignsOptions>().BindConfiguration("Campaigns").PostConfigure(o => o.ApplyDefaults())
            .Validate(o => TimeZoneExists(o.TimeZone), "Campaigns:TimeZone must be a known IANA time zone.")
            .Validate(o => o.RecencyMonths.Length == 4 && o.FrequencyMax.Length == 4 && o.MonetaryMax.Length == 4,
                "Campaigns:RecencyMonths, FrequencyMax and MonetaryMax need four boundaries each (five scores).")
            .Validate(o => TimeOnly.TryParseExact(o.Recompute.DailyAt, "HH:mm", out _) && o.Recompute.FitSampleSize >= 100,
                "Campaigns:Recompute:DailyAt must be HH:mm and FitSampleSize at least 100.")
            .Validate(o => o.OrderPaidBatchTimeLimit > TimeSpan.Zero && o.OrderPaidBatchTimeLimit <= TimeSpan.FromSeconds(1),
                "Campaigns:OrderPaidBatchTimeLimit must be above zero and at most 1 s.")
            .ValidateOnStart();
        builder.Services.AddSingleton<ReadModelStore>();
        builder.Services.AddSingleton<AnalyticsQueries>();
        builder.Services.AddSingleton<SalesReports>();
        builder.Services.AddSingleton<Rebuilder>();
        builder.Services.AddSingleton<SegmentStore>();
        builder.Services.AddSingleton<SegmentAudience>();
        // Redis (the suite's cache): the campaigns' per-customer weekly frequency cap.
        builder.AddRedisClient("cache");
        builder.Services.AddOptions<MarketingOptions>().BindConfiguration("Marketing");
        builder.Services.AddSingleton<FrequencyCap>();
        builder.Services.AddSingleton<IMessageSender, DeliveryLogSender>();
        builder.Services.AddSingleton<CampaignStore>();
        builder.Services.AddSingleton<CampaignDispatcher>();
        builder.Services.AddSingleton<TierWelcome>();
        builder.Services.AddSingleton<CampaignRewards>();
        builder.Services.AddSingleton<Simulation>();
        builder.Services.AddSingleton<Attribution>();
        // When campaigns send: quiet hours, the scheduler (one-off, recurring, birthday, win-back) and the retry of deferred sends.
        builder.Services.AddOptions<MarketingOptions>()
            .Validate(o => QuietHours.Valid(o.QuietHoursStart) && QuietHours.Valid(o.QuietHoursEnd), "Marketing:QuietHoursStart and End must be HH:mm or empty.")
            .Validate(o => o.Scheduler.TickInterval > TimeSpan.Zero && o.Scheduler.RetryInterval > TimeSpan.Zero && o.Scheduler.BirthdayCatchUpDays >= 0
                && o.Scheduler.PointsExpiringWithinDays is >= 1 and <= 366,
                "Marketing:Scheduler needs positive intervals, BirthdayCatchUpDays >= 0 and PointsExpiringWithinDays 1-366.")
            .Validate(o => o.TierWelcome.ConcurrentMessageLimit is >= 1 and <= 64 && o.TierWelcome.PrefetchCount is >= 0 and <= 1000,
                "Marketing:TierWelcome needs ConcurrentMessageLimit 1-64 and PrefetchCount 0-1000 (0: twice the limit).")
            .Validate(o => o.TierWelcome.BatchMessageLimit is >= 1 and <= 200 && o.TierWelcome.ConcurrentBatches is >= 1 and <= 8
                && o.TierWelcome.BatchTimeLimit > TimeSpan.Zero && o.TierWelcome.BatchTimeLimit <= TimeSpan.FromSeconds(1),
                "Marketing:TierWelcome needs BatchMessageLimit 1-200, ConcurrentBatches 1-8 and BatchTimeLimit above zero and at most 1 s.")
            .Validate<Npgsql.NpgsqlDataSource>((o, db) => o.TierWelcome.ConcurrentMessageLimit < new Npgsql.NpgsqlConnectionStringBuilder(db.ConnectionString).MaxPoolSize,
                "Marketing:TierWelcome:ConcurrentMessageLimit must stay below the database pool's Maximum Pool Size (each message in flight holds a connection).")
            .ValidateOnStart();
        builder.Services.AddSingleton(s => new QuietHours(s.GetRequiredService<IOptions<MarketingOptions>>().Value.QuietHoursStart,
            s.GetRequiredService<IOptions<MarketingOptions>>().Value.QuietHoursEnd,
            TimeZoneInfo.FindSystemTimeZoneById(s.GetRequiredService<IOptions<CampaignsOptions>>().Value.TimeZone)));
        builder.Services.AddSingleton<CampaignRunner>();
        builder.Services.AddSingleton<CampaignRuns>();
        builder.Services.AddSingleton<BirthdayAudience>();
        builder.Services.AddSingleton<WinBackTrigger>();
        builder.Services.AddSingleton<PointsExpiringTrigger>();
        builder.Services.AddSingleton<CampaignScheduler>();
        builder.Services.AddHostedService(s => s.GetRequiredService<CampaignScheduler>());
        builder.Services.AddSingleton<DeferredRetry>();
        builder.Services.AddHostedService(s => s.GetRequiredService<DeferredRetry>());
        builder.Services.AddSingleton<StoredScores>();
        builder.Services.AddSingleton<ScoreRecompute>();
        builder.Services.AddHostedService<RecomputeSchedule>();
        builder.Services.AddHostedService<SalesRollupFill>();
        overrides?.Invoke(builder.Services);

        var app = builder.Build();
        app.MapGrpcService<AnalyticsGrpcService>();
        app.MapGrpcService<SegmentGrpcService>();
        app.MapGrpcService<CampaignGrpcService>();
        app.MapGrpcDefaults();
        app.MapDefaultEndpoints();
        return app;
    }

    private static bool TimeZoneExists(string id)
    {
        try { TimeZoneInfo.FindSystemTimeZoneById(id); return true; }
        catch (TimeZoneNotFoundException) { return false; }
    }
}
