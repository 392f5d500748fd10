using System.Threading.RateLimiting;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Crm.ServiceDefaults.Security;

/// <summary>
/// Per-caller rate limits (token bucket per role + subject), from the section <c>RateLimits:&lt;role&gt;</c>:
/// PermitsPerSecond and Burst. Defaults: member 20/s (burst 40), store, service, sales and marketing 100/s
/// (burst 200), partner 500/s (burst 1000, bulk pushes), admin and system (service to service) unlimited; PermitsPerSecond=0 turns a role's limit
/// off. Past the budget: RESOURCE_EXHAUSTED with google.rpc.RetryInfo saying when to retry.
/// </summary>
public static class RateLimits
{
    private static readonly Dictionary<string, (int PerSecond, int Burst)> Defaults = new()
    {
        [Roles.Member] = (20, 40), [Roles.Store] = (100, 200), [Roles.Service] = (100, 200), [Roles.Sales] = (100, 200),
        [Roles.Marketing] = (100, 200), [Roles.Partner] = (500, 1000), [Roles.Admin] = (0, 0),
        [Roles.SalesManager] = (100, 200), [Roles.ServiceSupervisor] = (100, 200),
        // Another service's calls are already bounded by the limits of the callers that caused them.
        [Roles.System] = (0, 0),
    };

    public static void AddCrmRateLimits(this IHostApplicationBuilder builder)
    {
        var section = builder.Configuration.GetSection("RateLimits");
        var limits = Roles.All.ToDictionary(r => r, r =>
        {
            var perSecond = section.GetValue<int?>($"{r}:PermitsPerSecond") ?? Defaults[r].PerSecond;
            var burst = section.GetValue<int?>($"{r}:Burst") ?? Math.Max(perSecond, Defaults[r].Burst);
            return (PerSecond: perSecond, Burst: Math.Max(burst, perSecond));
        });
        builder.Services.AddRateLimiter(o =>
        {
            o.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(http =>
            {
                if (http.User.Identity?.IsAuthenticated != true) return RateLimitPartition.GetNoLimiter("anonymous");
                var caller = http.Caller();
                // The most generous of the caller's roles decides; admin (or a role with 0) is not limited.
                if (caller.Roles.Contains(Roles.Admin)) return RateLimitPartition.GetNoLimiter("admin");
                var role = caller.Roles.Where(limits.ContainsKey).OrderByDescending(r => limits[r].PerSecond == 0 ? int.MaxValue : limits[r].PerSecond).FirstOrDefault();
                if (role is null) return RateLimitPartition.GetNoLimiter("no-role");
                var (perSecond, burst) = limits[role];
                if (perSecond <= 0) return RateLimitPartition.GetNoLimiter(role);
                return RateLimitPartition.GetTokenBucketLimiter($"{role}|{caller.Subject}", _ => new TokenBucketRateLimiterOptions
                {
                    TokenLimit = burst, TokensPerPeriod = perSecond, ReplenishmentPeriod = TimeSpan.FromSeconds(1),
                    QueueLimit = 0, AutoReplenishment = true,
                });
            });
            o.OnRejected = (context, _) =>
            {
                var retryAfter = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? after : TimeSpan.FromSeconds(1);
                var message = $"Rate limit reached; retry after {Math.Ceiling(retryAfter.TotalSeconds)} s.";
                var status = new Google.Rpc.Status { Code = (int)Google.Rpc.Code.ResourceExhausted, Message = message };
                status.Details.Add(Any.Pack(new Google.Rpc.RetryInfo { RetryDelay = Duration.FromTimeSpan(retryAfter) }));
                // A trailers-only gRPC response: the status travels in the headers.
                var response = context.HttpContext.Response;
                response.StatusCode = StatusCodes.Status200OK;
                response.ContentType = "application/grpc";
                response.Headers["grpc-status"] = ((int)Google.Rpc.Code.ResourceExhausted).ToString(System.Globalization.CultureInfo.InvariantCulture);
                response.Headers["grpc-message"] = Uri.EscapeDataString(message);
                response.Headers["grpc-status-details-bin"] = Convert.ToBase64String(status.ToByteArray()).TrimEnd('=');
                response.Headers.RetryAfter = Math.Ceiling(retryAfter.TotalSeconds).ToString(System.Globalization.CultureInfo.InvariantCulture);
                return ValueTask.CompletedTask;
            };
        });
    }
}
