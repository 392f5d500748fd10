using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;

namespace Crm.ServiceDefaults.Grpc;

/// <summary>
/// A request body that is not a valid protobuf message of the method's request type (garbage, truncated,
/// invalid UTF-8 in a string) fails in ASP.NET Core gRPC before any interceptor runs, and it answers UNKNOWN
/// ("Exception was thrown by handler."). That is bad input, so it is rewritten to INVALID_ARGUMENT here:
/// a call that failed with UNKNOWN before reaching <see cref="RequestGuard"/> (which marks the call) failed
/// while its request was read. Such replies are trailers-only, so the status is still in the headers when
/// they are sent.
/// </summary>
internal sealed class UnreadableRequestsFilter : IStartupFilter
{
    internal static readonly object ReachedInterceptors = new();
    private const string Message = "The request message could not be parsed as the method's protobuf request type.";

    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        app.Use((context, nextMiddleware) =>
        {
            if (context.Request.ContentType?.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase) == true)
                context.Response.OnStarting(static state =>
                {
                    var http = (HttpContext)state;
                    var headers = http.Response.Headers;
                    if (headers["grpc-status"] == "2" && !http.Items.ContainsKey(ReachedInterceptors))
                    {
                        headers["grpc-status"] = "3";
                        headers["grpc-message"] = Uri.EscapeDataString(Message);
                    }
                    return Task.CompletedTask;
                }, context);
            return nextMiddleware(context);
        });
        next(app);
    };
}
