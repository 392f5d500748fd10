using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Crm.IntegrationTests.Support;
using Crm.ServiceDefaults.Security;
using Google.Protobuf;

namespace Crm.IntegrationTests.Security;

/// <summary>gRPC-Web on every service: a browser-style call with a token works; CORS answers only allowed origins.</summary>
[Collection(SuiteCollection.Name)]
public sealed class GrpcWebTests(SuiteFixture suite)
{
    private const string Allowed = "https://console.crm.test";

    private static HttpRequestMessage Request(HttpMethod method, Uri uri) => new(method, uri)
    {
        Version = HttpVersion.Version11, VersionPolicy = HttpVersionPolicy.RequestVersionExact, // as a browser without TLS: the web endpoint
    };

    private static async Task<(HttpResponseMessage Response, string Body)> CallAsync(ServiceHost host, string path, IMessage request, string? token)
    {
        using var http = new HttpClient();
        var payload = request.ToByteArray();
        var frame = new byte[5 + payload.Length];
        BitConverter.GetBytes(payload.Length).Reverse().ToArray().CopyTo(frame, 1);
        payload.CopyTo(frame, 5);
        var message = Request(HttpMethod.Post, new Uri(host.WebAddress, path));
        message.Content = new ByteArrayContent(frame);
        message.Content.Headers.ContentType = new MediaTypeHeaderValue("application/grpc-web+proto");
        message.Headers.Add("Origin", Allowed);
        if (token is not null) message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        var response = await http.SendAsync(message);
        return (response, Encoding.Latin1.GetString(await response.Content.ReadAsByteArrayAsync()));
    }

    [Fact]
    public async Task A_gRPC_Web_call_with_a_token_succeeds_and_without_one_is_UNAUTHENTICATED()
    {
        var (ok, body) = await CallAsync(suite.Loyalty, "/crm.loyalty.v1.LoyaltyService/ListRewards", new Crm.Loyalty.V1.ListRewardsRequest { PageSize = 1 }, TestAuth.Token(Roles.Store));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.StartsWith("application/grpc-web", ok.Content.Headers.ContentType!.MediaType);
        Assert.Matches(@"grpc-status: ?0", body); // the trailers frame at the end of the body
        Assert.Equal(Allowed, ok.Headers.GetValues("Access-Control-Allow-Origin").Single());

        var (denied, _) = await CallAsync(suite.Loyalty, "/crm.loyalty.v1.LoyaltyService/ListRewards", new Crm.Loyalty.V1.ListRewardsRequest(), null);
        Assert.Equal(HttpStatusCode.Unauthorized, denied.StatusCode); // grpc-web clients map 401 to UNAUTHENTICATED
    }

    [Theory]
    [InlineData(Allowed, true)]
    [InlineData("https://evil.example", false)]
    public async Task CORS_preflight_answers_only_allowed_origins(string origin, bool allowed)
    {
        using var http = new HttpClient();
        var preflight = Request(HttpMethod.Options, new Uri(suite.Customer.WebAddress, "/crm.customer.v1.CustomerService/GetCustomer"));
        preflight.Headers.Add("Origin", origin);
        preflight.Headers.Add("Access-Control-Request-Method", "POST");
        preflight.Headers.Add("Access-Control-Request-Headers", "authorization,content-type,x-grpc-web");
        var response = await http.SendAsync(preflight);
        Assert.Equal(allowed, response.Headers.TryGetValues("Access-Control-Allow-Origin", out var values) && values.Single() == origin);
    }
}
