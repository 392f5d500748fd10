using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Options;

namespace Crm.Messaging.Webhooks;

internal static class WebhookRegistration
{
    /// <summary>
    /// The crm.webhooks.v1.Webhooks service, its dispatcher and the change-event pruner. Settings: <c>Messaging:Webhooks</c>,
    /// <c>Messaging:ChangeEvents</c>.
    /// </summary>
    public static void AddWebhooks(this IServiceCollection services)
    {
        services.AddOptions<WebhookOptions>().BindConfiguration("Messaging:Webhooks")
            .Validate(o => o.PollInterval > TimeSpan.Zero && o.RequestTimeout > TimeSpan.Zero && o.FirstRetryDelay > TimeSpan.Zero
                           && o.MaxRetryDelay >= o.FirstRetryDelay && o.DisableAfter > TimeSpan.Zero && o.MaxConcurrentEndpoints >= 1
                           && o.Lease > o.RequestTimeout,
                "Messaging:Webhooks needs positive intervals, MaxRetryDelay >= FirstRetryDelay, MaxConcurrentEndpoints >= 1, Lease > RequestTimeout.")
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<WebhookOptions>, SettingsValidation>();
        services.AddOptions<ChangeEventRetentionOptions>().BindConfiguration("Messaging:ChangeEvents")
            .Validate(o => o.Retention > TimeSpan.Zero && o.PruneInterval > TimeSpan.Zero && o.PruneBatchSize >= 1,
                "Messaging:ChangeEvents needs a positive Retention and PruneInterval and PruneBatchSize >= 1.")
            .ValidateOnStart();
        // Retries are the dispatcher's (in order, with the delivery log): none hidden in the client. RemoveAllResilienceHandlers
        // is marked experimental; it is the way to take out the standard handler ServiceDefaults adds to every client.
#pragma warning disable EXTEXP0001
        services.AddHttpClient(WebhookDispatcher.HttpClientName)
            .ConfigureHttpClient((sp, client) => client.Timeout = sp.GetRequiredService<IOptions<WebhookOptions>>().Value.RequestTimeout + TimeSpan.FromSeconds(1))
            // A redirect is an answer (a failure), not a place to re-send the signed body to (a POST would turn into a GET).
            // The policy makes every connection (resolve, check, connect); a proxy would connect for us past it, so none.
            .ConfigurePrimaryHttpMessageHandler(sp => new SocketsHttpHandler
            {
                AllowAutoRedirect = false, UseProxy = false, ConnectCallback = sp.GetRequiredService<WebhookAddressPolicy>().ConnectAsync,
            })
            .RemoveAllResilienceHandlers();
#pragma warning restore EXTEXP0001
        services.AddSingleton<WebhookAddressPolicy>();
        services.AddSingleton<WebhookSecrets>();
        services.AddSingleton<WebhookStore>();
        // Who may see which events (a service that keeps partner links registers its own; see PartnerChangeScope).
        services.TryAddSingleton(Crm.Messaging.ChangeFeed.PartnerChangeScope.None);
        services.AddHostedService<WebhookDispatcher>();
        services.AddHostedService<ChangeEventPruner>();
        services.AddSingleton(new DefaultEndpoints(endpoints => endpoints.MapGrpcService<WebhooksService>()));
    }

    private sealed class SettingsValidation : IValidateOptions<WebhookOptions>
    {
        public ValidateOptionsResult Validate(string? name, WebhookOptions options) =>
            (options.SecretKeyProblem() ?? options.NetworkProblem()) is { } problem ? ValidateOptionsResult.Fail(problem) : ValidateOptionsResult.Success;
    }
}
