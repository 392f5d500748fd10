using Crm.Loyalty.Accounts;
using Crm.Loyalty.Activities;
using Crm.Loyalty.Earning;
using Crm.Loyalty.Expiry;
using Crm.Loyalty.Grpc;

namespace Crm.Loyalty;

/// <summary>Composition of the loyalty service; tests build the same app on real infrastructure.</summary>
public static class LoyaltyApp
{
    public static WebApplication Build(string[] args, Action<IServiceCollection>? overrides = null)
    {
        Dapper.DefaultTypeMap.MatchNamesWithUnderscores = true;
        var builder = WebApplication.CreateBuilder(args);
        builder.AddServiceDefaults();
        builder.AddNpgsqlDataSource("loyaltydb");
        builder.AddDatabaseMigrations(typeof(LoyaltyApp).Assembly);
        builder.AddMessaging("messaging", bus =>
        {
            bus.AddConsumer<CustomerRegisteredConsumer>();
            // OrderPaid in batches (falling back to OrderPaidConsumer per message), or one at a time with Loyalty:OrderPaidBatches:Enabled=false.
            if (builder.Configuration.GetValue("Loyalty:OrderPaidBatches:Enabled", true))
                bus.AddConsumer<OrderPaidBatchConsumer>(typeof(OrderPaidBatchConsumerDefinition));
            else bus.AddConsumer<OrderPaidConsumer>();
            bus.AddConsumer<OrderRefundedConsumer>();
        });
        builder.AddGrpcDefaults();

        builder.Services.AddOptions<LoyaltyOptions>().BindConfiguration("Loyalty");
        builder.Services.AddSingleton<TierTable>();
        builder.Services.AddSingleton<BrandCalendar>();
        builder.Services.AddSingleton<Ledger>();
        builder.Services.AddSingleton<AccountTransactions>();
        builder.Services.AddSingleton<AccountQueries>();
        builder.Services.AddSingleton<PointsAdjustments>();
        builder.Services.AddSingleton<CheckIns>();
        builder.Services.AddSingleton<ActivityPoints>();
        builder.Services.AddSingleton<PointsExpiry>();
        builder.Services.AddHostedService<PointsExpiryService>();
        builder.Services.AddSingleton<Rewards.ILotteryRandom, Rewards.SecureLotteryRandom>();
        builder.Services.AddSingleton<Rewards.RewardCatalog>();
        builder.Services.AddSingleton<Rewards.Coupons>();
        builder.Services.AddSingleton<Rewards.Redemptions>();
        builder.Services.AddSingleton<Rewards.LotteryDraws>();
        builder.Services.AddSingleton<Rewards.RewardGrants>();
        overrides?.Invoke(builder.Services);

        var app = builder.Build();
        app.MapGrpcService<LoyaltyGrpcService>();
        app.MapGrpcDefaults();
        app.MapDefaultEndpoints();
        return app;
    }
}
