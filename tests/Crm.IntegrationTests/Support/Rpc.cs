using Google.Rpc;
using Grpc.Core;

namespace Crm.IntegrationTests.Support;

/// <summary>Reading the google.rpc details a service attaches to its errors.</summary>
public static class Rpc
{
    public static async Task<RpcException> FailsWith(StatusCode code, Func<Task> call)
    {
        var ex = await Assert.ThrowsAsync<RpcException>(call);
        Assert.True(code == ex.StatusCode, $"Expected {code}, got {ex.StatusCode}: {ex.Status.Detail}");
        return ex;
    }

    public static IReadOnlyList<string> Fields(this RpcException ex) =>
        ex.GetRpcStatus()?.GetDetail<BadRequest>()?.FieldViolations.Select(v => v.Field).Order().ToList() ?? [];

    public static ResourceInfo? Resource(this RpcException ex) => ex.GetRpcStatus()?.GetDetail<ResourceInfo>();
}
