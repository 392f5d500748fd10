namespace Crm.Campaigns;

/// <summary>Composition of the campaign service; tests build the same app on real infrastructure.</summary>
public static class CampaignsApp
{
    public static WebApplication Build(string[] args, Action<IServiceCollection>? overrides = null)
    {
        var builder = WebApplication.CreateBuilder(args);
        overrides?.Invoke(builder.Services);
        return builder.Build();
    }
}
