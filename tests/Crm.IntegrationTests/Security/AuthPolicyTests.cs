using System.Reflection;
using Crm.IntegrationTests.Support;
using Crm.ServiceDefaults.Security;
using Grpc.AspNetCore.Server;
using Grpc.Core;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace Crm.IntegrationTests.Security;

/// <summary>
/// Deny by default, proven over every RPC every hosted service serves: each declares its roles with
/// [Allow] (a new RPC without one fails here), and the running service enforces exactly that table.
/// </summary>
[Collection(SuiteCollection.Name)]
public sealed class AuthPolicyTests(SuiteFixture suite, ITestOutputHelper output)
{
    private static readonly Marshaller<byte[]> Bytes = Marshallers.Create(b => b, b => b);

    public sealed record Rpc(string HostName, ServiceHost Host, string Service, string Method, IReadOnlyList<object> Metadata)
    {
        public string FullName => $"{Service}/{Method}";
        public AllowAttribute? Allow => Metadata.OfType<AllowAttribute>().LastOrDefault();
    }

    private List<(string Name, ServiceHost Host)> Hosts() => typeof(SuiteFixture).GetProperties(BindingFlags.Public | BindingFlags.Instance)
        .Where(p => p.PropertyType == typeof(ServiceHost))
        .Select(p => (p.Name, (ServiceHost)p.GetValue(suite)!))
        .ToList();

    /// <summary>Every gRPC method endpoint of the house's services (crm.*), with its endpoint metadata.</summary>
    private List<Rpc> Rpcs() => Hosts().SelectMany(h => h.Host.Services.GetRequiredService<EndpointDataSource>().Endpoints
            .Select(e => (Endpoint: e, Grpc: e.Metadata.GetMetadata<GrpcMethodMetadata>()))
            .Where(x => x.Grpc is not null && x.Grpc.Method.ServiceName.StartsWith("crm.", StringComparison.Ordinal))
            .Select(x => new Rpc(h.Name, h.Host, x.Grpc!.Method.ServiceName, x.Grpc.Method.Name, x.Endpoint.Metadata.ToList())))
        .ToList();

    [Fact]
    public void Every_RPC_of_every_hosted_service_declares_who_may_call_it()
    {
        var rpcs = Rpcs();
        Assert.NotEmpty(rpcs);
        // The endpoints must cover each service's whole descriptor (an RPC missing here would escape the check).
        var missing = new List<string>();
        foreach (var group in rpcs.GroupBy(r => r.Service))
        {
            var descriptor = rpcs.First(r => r.Service == group.Key).Metadata.OfType<GrpcMethodMetadata>().First().ServiceType;
            var serviceBase = descriptor.BaseType!; // e.g. CustomerService.CustomerServiceBase
            var serviceClass = serviceBase.DeclaringType!;
            var serviceDescriptor = (Google.Protobuf.Reflection.ServiceDescriptor)serviceClass.GetProperty("Descriptor")!.GetValue(null)!;
            foreach (var method in serviceDescriptor.Methods)
                if (!group.Any(r => r.Method == method.Name)) missing.Add($"{group.Key}/{method.Name}: no endpoint");
        }
        foreach (var rpc in rpcs)
        {
            var open = rpc.Metadata.OfType<IAllowAnonymous>().Any();
            var declared = rpc.Metadata.OfType<IAuthorizeData>().Any(a => !string.IsNullOrWhiteSpace(a.Roles) || !string.IsNullOrWhiteSpace(a.Policy));
            if (!open && !declared) missing.Add($"{rpc.FullName}: no [Allow(...)] on its implementation");
            else output.WriteLine($"{rpc.FullName}: {(open ? "anonymous" : string.Join(", ", rpc.Allow?.AllowedRoles ?? ["(policy)"]))}");
        }
        Assert.True(missing.Count == 0, "RPCs without a declared policy:\n" + string.Join("\n", missing));
    }

    [Fact]
    public async Task Every_RPC_answers_UNAUTHENTICATED_without_a_token_PERMISSION_DENIED_to_other_roles_and_lets_its_roles_through()
    {
        var failures = new List<string>();
        var calls = 0;
        foreach (var rpc in Rpcs().Where(r => r.Allow is not null))
        {
            var method = new Method<byte[], byte[]>(MethodType.Unary, rpc.Service, rpc.Method, Bytes, Bytes);
            var cases = new List<(string Who, string? Token, Func<StatusCode?, bool> Ok, string Expected)>
            {
                ("no token", null, s => s == StatusCode.Unauthenticated, "UNAUTHENTICATED"),
            };
            foreach (var role in Roles.All)
            {
                var token = TestAuth.Token(role, role == Roles.Member ? Guid.NewGuid().ToString() : null);
                if (rpc.Allow!.AllowedRoles.Contains(role))
                    cases.Add((role, token, s => s is not StatusCode.Unauthenticated and not StatusCode.PermissionDenied, "past authorization"));
                else
                    cases.Add((role, token, s => s == StatusCode.PermissionDenied, "PERMISSION_DENIED"));
            }
            foreach (var (who, token, ok, expected) in cases)
            {
                var channel = rpc.Host.ChannelWithToken(token);
                StatusCode? status = null;
                string detail = "";
                try
                {
                    // An empty request: allowed roles get past authorization and stop at validation (or succeed on a read).
                    await channel.CreateCallInvoker().AsyncUnaryCall(method, null, new CallOptions(deadline: DateTime.UtcNow.AddSeconds(10)), []);
                    status = StatusCode.OK;
                }
                catch (RpcException ex) { status = ex.StatusCode; detail = ex.Status.Detail; }
                calls++;
                if (!ok(status)) failures.Add($"{rpc.FullName} as {who}: expected {expected}, got {status} {detail}");
            }
        }
        output.WriteLine($"{calls} calls");
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    public static TheoryData<string> BadTokens => new() { "expired", "other key", "other audience", "other issuer", "not yet valid", "garbage", "unsigned" };

    [Theory]
    [MemberData(nameof(BadTokens))]
    public async Task A_bad_token_is_UNAUTHENTICATED(string kind)
    {
        using var otherKey = DevTokens.NewKey();
        var token = kind switch
        {
            "expired" => DevTokens.Create(TestAuth.Key, TestAuth.Issuer, TestAuth.Audience, Roles.Admin, lifetime: TimeSpan.FromHours(1), now: DateTimeOffset.UtcNow.AddHours(-2)),
            "other key" => DevTokens.Create(otherKey, TestAuth.Issuer, TestAuth.Audience, Roles.Admin),
            "other audience" => DevTokens.Create(TestAuth.Key, TestAuth.Issuer, "someone-else", Roles.Admin),
            "other issuer" => DevTokens.Create(TestAuth.Key, "someone-else", TestAuth.Audience, Roles.Admin),
            "not yet valid" => DevTokens.Create(TestAuth.Key, TestAuth.Issuer, TestAuth.Audience, Roles.Admin, now: DateTimeOffset.UtcNow.AddHours(1)),
            "garbage" => "not.a.token",
            "unsigned" => string.Join('.', DevTokens.Create(TestAuth.Key, TestAuth.Issuer, TestAuth.Audience, Roles.Admin).Split('.')[..2]) + ".",
            _ => throw new ArgumentOutOfRangeException(nameof(kind)),
        };
        var client = new Crm.Customer.V1.CustomerService.CustomerServiceClient(suite.Customer.ChannelWithToken(token));
        await Support.Rpc.FailsWith(StatusCode.Unauthenticated,
            () => client.GetCustomerAsync(new Crm.Customer.V1.GetCustomerRequest { Id = Guid.NewGuid().ToString() }).ResponseAsync);
    }

    [Fact]
    public async Task Health_is_anonymous_and_reflection_is_anonymous_in_Development_only()
    {
        var anonymous = suite.Customer.ChannelWithToken(null);
        var health = await new Grpc.Health.V1.Health.HealthClient(anonymous).CheckAsync(new Grpc.Health.V1.HealthCheckRequest());
        Assert.Equal(Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving, health.Status);
        var reflection = suite.Customer.Services.GetRequiredService<EndpointDataSource>().Endpoints
            .Single(e => e.Metadata.GetMetadata<GrpcMethodMetadata>()?.Method.ServiceName == "grpc.reflection.v1alpha.ServerReflection");
        var env = suite.Customer.Services.GetRequiredService<Microsoft.Extensions.Hosting.IHostEnvironment>();
        if (env.EnvironmentName == "Development") Assert.NotNull(reflection.Metadata.GetMetadata<IAllowAnonymous>());
        else Assert.Contains(reflection.Metadata.OfType<IAuthorizeData>(), a => a.Policy == AuthSetup.AdminPolicy);
    }
}
