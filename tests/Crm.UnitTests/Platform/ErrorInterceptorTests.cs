using Crm.ServiceDefaults.Errors;
using Google.Rpc;
using Grpc.Core;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Crm.UnitTests.Platform;

/// <summary>The error mapping: bounded messages and details, and Postgres errors caused by input never INTERNAL.</summary>
public class ErrorInterceptorTests
{
    private static async Task<RpcException> Fails(Exception thrown)
    {
        var interceptor = new ErrorInterceptor(NullLogger<ErrorInterceptor>.Instance);
        return await Assert.ThrowsAsync<RpcException>(() =>
            interceptor.UnaryServerHandler<string, string>("request", new FakeCallContext(), (_, _) => throw thrown));
    }

    [Fact]
    public async Task A_huge_echoed_value_is_cut_in_the_message_and_in_the_details()
    {
        var ex = await Fails(new ValidationException("update_mask", $"'{new string('x', 30_000)}' is not a profile field."));
        Assert.Equal(StatusCode.InvalidArgument, ex.StatusCode);
        Assert.True(ex.Status.Detail.Length <= ErrorInterceptor.MaxMessageLength + 1, $"{ex.Status.Detail.Length} characters");
        var status = ex.GetRpcStatus()!;
        Assert.True(status.CalculateSize() <= ErrorInterceptor.MaxDetailsBytes + 1024, $"{status.CalculateSize()} bytes");
        Assert.Equal("update_mask", Assert.Single(status.GetDetail<BadRequest>()!.FieldViolations).Field);
    }

    [Fact]
    public async Task Thousands_of_violations_are_summarised_within_the_details_budget()
    {
        var violations = Enumerable.Range(0, 5_000).Select(i => new FieldViolation($"lines[{i}].sku", "is required, at most 64 characters.")).ToList();
        var status = (await Fails(new ValidationException(violations))).GetRpcStatus()!;
        var shown = status.GetDetail<BadRequest>()!.FieldViolations;
        Assert.InRange(shown.Count, 10, 200);
        Assert.Equal("lines[0].sku", shown[0].Field);
        Assert.EndsWith("more violations not shown.", shown[^1].Description);
        Assert.True(status.CalculateSize() <= ErrorInterceptor.MaxDetailsBytes + 1024, $"{status.CalculateSize()} bytes");
    }

    [Fact]
    public async Task A_unique_violation_nobody_caught_is_ALREADY_EXISTS()
    {
        var ex = await Fails(new PostgresException("duplicate key value violates unique constraint", "ERROR", "ERROR",
            PostgresErrorCodes.UniqueViolation, tableName: "coupons", constraintName: "coupons_pkey"));
        Assert.Equal(StatusCode.AlreadyExists, ex.StatusCode);
        Assert.Equal("coupons", ex.GetRpcStatus()!.GetDetail<ResourceInfo>()!.ResourceType);
    }

    [Theory]
    [InlineData("22021")] // invalid byte sequence (a NUL in text)
    [InlineData("22P05")] // untranslatable character
    [InlineData("22001")] // string too long for its column
    [InlineData("22003")] // numeric value out of range
    [InlineData("54000")] // index row too large
    public async Task A_value_the_database_cannot_store_is_INVALID_ARGUMENT(string sqlState)
    {
        var ex = await Fails(new PostgresException("bad value", "ERROR", "ERROR", sqlState, columnName: "name"));
        Assert.Equal(StatusCode.InvalidArgument, ex.StatusCode);
        Assert.Equal("name", Assert.Single(ex.GetRpcStatus()!.GetDetail<BadRequest>()!.FieldViolations).Field);
    }

    [Fact]
    public async Task Anything_else_is_INTERNAL_without_internals()
    {
        var ex = await Fails(new InvalidOperationException("secret detail"));
        Assert.Equal(StatusCode.Internal, ex.StatusCode);
        Assert.DoesNotContain("secret", ex.Status.Detail);
    }

    private sealed class FakeCallContext : ServerCallContext
    {
        protected override string MethodCore => "/crm.test.v1.TestService/Test";
        protected override string HostCore => "localhost";
        protected override string PeerCore => "ipv4:127.0.0.1:1";
        protected override DateTime DeadlineCore => DateTime.MaxValue;
        protected override Metadata RequestHeadersCore { get; } = [];
        protected override CancellationToken CancellationTokenCore => CancellationToken.None;
        protected override Metadata ResponseTrailersCore { get; } = [];
        protected override Grpc.Core.Status StatusCore { get; set; }
        protected override WriteOptions? WriteOptionsCore { get; set; }
        protected override AuthContext AuthContextCore => new(null, []);
        protected override ContextPropagationToken CreatePropagationTokenCore(ContextPropagationOptions? options) => throw new NotSupportedException();
        protected override Task WriteResponseHeadersAsyncCore(Metadata responseHeaders) => Task.CompletedTask;
    }
}
