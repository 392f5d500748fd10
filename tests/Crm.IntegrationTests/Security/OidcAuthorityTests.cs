using System.Security.Cryptography;
using Crm.Customer.V1;
using Crm.IntegrationTests.Support;
using Crm.ServiceDefaults.Security;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Crm.IntegrationTests.Security;

/// <summary>
/// The deployment path: a service given Auth:Authority (any OIDC provider) finds the provider's signing keys
/// through its discovery document and JWKS, and accepts exactly the tokens signed with them. The provider
/// here is a minimal one on a loopback port serving those two documents, as Keycloak or Entra ID would.
/// </summary>
[Collection(SuiteCollection.Name)]
public sealed class OidcAuthorityTests(SuiteFixture suite)
{
    [Fact]
    public async Task A_service_configured_with_an_authority_takes_its_keys_from_the_providers_JWKS()
    {
        using var providerKey = DevTokens.NewKey();
        await using var provider = await StartProviderAsync(providerKey);
        await using var customer = await ServiceHost.StartAsync(Crm.Customer.CustomerApp.Build, suite.Infrastructure, "customer-oidc", "customerdb",
            extraArgs: [$"--Auth:Authority={provider.Urls.First()}", "--Auth:RequireHttpsMetadata=false"]);

        var signedByProvider = DevTokens.Create(providerKey, TestAuth.Issuer, TestAuth.Audience, Roles.Service, "agent-oidc");
        var created = await new CustomerService.CustomerServiceClient(customer.ChannelWithToken(signedByProvider)).CreateCustomerAsync(new CreateCustomerRequest
        {
            Profile = new CustomerProfile { Name = "欧阳锋", Phone = Customer.CustomerProfileTests.UniquePhone() },
        });
        Assert.False(string.IsNullOrEmpty(created.Id));

        // A key the provider does not publish is refused, even with the right issuer and audience.
        using var strangerKey = DevTokens.NewKey();
        var forged = DevTokens.Create(strangerKey, TestAuth.Issuer, TestAuth.Audience, Roles.Admin, "mallory");
        await Support.Rpc.FailsWith(StatusCode.Unauthenticated, () => new CustomerService.CustomerServiceClient(customer.ChannelWithToken(forged))
            .GetCustomerAsync(new GetCustomerRequest { Id = created.Id }).ResponseAsync);
    }

    /// <summary>/.well-known/openid-configuration and /jwks with the public half of <paramref name="key"/> (EC P-256, ES256).</summary>
    private static async Task<WebApplication> StartProviderAsync(ECDsa key)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls($"http://127.0.0.1:{ServiceHost.FreePort()}");
        var app = builder.Build();
        var p = key.ExportParameters(false);
        app.MapGet("/.well-known/openid-configuration", (HttpContext http) => Results.Json(new Dictionary<string, object>
        {
            ["issuer"] = TestAuth.Issuer,
            ["jwks_uri"] = $"{http.Request.Scheme}://{http.Request.Host}/jwks",
            ["id_token_signing_alg_values_supported"] = new[] { "ES256" },
        }));
        app.MapGet("/jwks", () => Results.Json(new
        {
            keys = new[]
            {
                new Dictionary<string, string>
                {
                    ["kty"] = "EC", ["crv"] = "P-256", ["use"] = "sig", ["alg"] = "ES256", ["kid"] = DevTokens.KeyId(key),
                    ["x"] = Base64Url(p.Q.X!), ["y"] = Base64Url(p.Q.Y!),
                },
            },
        }));
        await app.StartAsync();
        return app;
    }

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
