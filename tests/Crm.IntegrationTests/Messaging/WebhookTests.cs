using System.Collections.Concurrent;
using System.Text.Json;
using Crm.IntegrationTests.Support;
using Crm.Messaging;
using Crm.Messaging.ChangeFeed;
using Crm.Messaging.Webhooks;
using Crm.ServiceDefaults.Security;
using Crm.Webhooks.V1;
using Dapper;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using Xunit.Abstractions;

namespace Crm.IntegrationTests.Messaging;

public sealed record WebhookPing(int N, string Run);
public sealed record WebhookOther(int N, string Run);
/// <summary>An event about a customer (customerId at the top of the payload, as OrderPaid has it).</summary>
public sealed record WebhookAbout(int N, string Run, Guid CustomerId);

/// <summary>
/// Signed webhooks on a small service of their own (built like the real ones: AddServiceDefaults, AddMessaging), each test
/// on a fresh database, with events written through the transactional outbox and a local Kestrel receiver that checks
/// every signature with <see cref="WebhookSignature.Verify"/>. Delivery timings are scaled down: retries 0.2 s doubling
/// to 1 s (the defaults are 10 s doubling to 30 min), a poll every 0.1 s. Plain http, and 127.0.0.0/8 allowed for the
/// local receiver (a production service allows neither), unless a test says otherwise.
/// </summary>
[Collection(SuiteCollection.Name)]
public sealed class WebhookTests(SuiteFixture suite, ITestOutputHelper output) : IAsyncLifetime
{
    private const string Secret = "test-secret-0123456789abcdef";
    private readonly List<IAsyncDisposable> _disposables = [];
    private ServiceHost _host = null!;
    private NpgsqlDataSource _db = null!;
    private readonly string _run = Guid.NewGuid().ToString("N")[..8];

    public Task InitializeAsync() => Task.CompletedTask;

    private string Database => "webhooks_" + _run;

    private async Task StartAsync(string disableAfter = "1.00:00:00", bool allowLoopback = true)
    {
        var database = Database;
        await suite.Infrastructure.Postgres!.CreateDatabaseAsync(database);
        // This small service keeps partner links the way the customer service does (its external ids): the table a
        // PartnerChangeScope names. A partner's endpoint gets only the events of customers linked to its systems.
        await using (var setup = new NpgsqlConnection(suite.Infrastructure.Postgres.ConnectionString(database)))
            await setup.ExecuteAsync("CREATE TABLE partner_links (customer_id uuid NOT NULL, system text NOT NULL, PRIMARY KEY (customer_id, system))");
        _host = await ServiceHost.StartAsync(args =>
        {
            var builder = WebApplication.CreateBuilder(args);
            builder.AddServiceDefaults();
            builder.AddNpgsqlDataSource(database);
            builder.AddMessaging("messaging");
            builder.Services.AddSingleton(new PartnerChangeScope("partner_links"));
            builder.AddGrpcDefaults();
            var app = builder.Build();
            app.MapGrpcDefaults();
            app.MapDefaultEndpoints();
            return app;
        }, suite.Infrastructure, "webhooktest", database, extraArgs:
        [
            "--Messaging:Webhooks:PollInterval=00:00:00.100",
            "--Messaging:Webhooks:FirstRetryDelay=00:00:00.200",
            "--Messaging:Webhooks:MaxRetryDelay=00:00:01",
            "--Messaging:Webhooks:RequestTimeout=00:00:02",
            $"--Messaging:Webhooks:DisableAfter={disableAfter}",
            "--Messaging:ChangeEvents:Retention=2.00:00:00",
            "--Messaging:ChangeEvents:PruneInterval=01:00:00",
            "--Messaging:Webhooks:RequireHttps=false",
            .. allowLoopback ? ["--Messaging:Webhooks:AllowedPrivateNetworks:0=127.0.0.0/8"] : Array.Empty<string>(),
        ]);
        _db = _host.Services.GetRequiredService<NpgsqlDataSource>();
    }

    public async Task DisposeAsync()
    {
        foreach (var d in _disposables) await d.DisposeAsync();
        if (_host is not null) await _host.DisposeAsync();
    }

    private Crm.Webhooks.V1.Webhooks.WebhooksClient Admin => new(_host.Channel);

    [Fact]
    public async Task Events_reach_the_endpoint_in_commit_order_signed_and_filtered_by_type()
    {
        await StartAsync();
        var receiver = await Receiver.StartAsync(_disposables);
        var created = await Admin.CreateEndpointAsync(new CreateEndpointRequest { Url = receiver.Url, EventTypes = { "WebhookPing" }, Secret = Secret });
        var everything = await Admin.CreateEndpointAsync(new CreateEndpointRequest { Url = receiver.Url + "?all" });
        Assert.Equal(Secret, created.Secret);
        Assert.StartsWith("whsec_", everything.Secret);

        for (var n = 1; n <= 10; n++) await WriteAsync(new WebhookPing(n, _run));
        await WriteAsync(new WebhookOther(11, _run));
        await WriteAsync(new WebhookPing(12, _run), new WebhookPing(13, _run)); // one transaction, two events

        var got = await receiver.WaitForAsync(r => r.Query == "" && r.Accepted, 12, "the 12 pings");
        Assert.Equal([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13], got.Select(r => r.N));
        Assert.All(got, r => Assert.True(r.SignatureValid, "signature"));
        Assert.All(got, r => Assert.Equal("WebhookPing", r.Type));
        Assert.All(got, r => Assert.Equal(r.Id, r.HeaderId)); // the idempotency id is the event id
        Assert.Equal(12, got.Select(r => r.Id).Distinct().Count());
        // The unfiltered endpoint got the other event too, in its place, signed with its own secret.
        var all = await receiver.WaitForAsync(r => r.Query == "?all" && r.Accepted, 13, "all 13 events");
        Assert.Equal([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13], all.Select(r => r.N));
        Assert.Equal("WebhookOther", all[10].Type);

        var log = await Admin.ListDeliveriesAsync(new ListDeliveriesRequest { EndpointId = created.Endpoint.Id, PageSize = 5 });
        Assert.Equal(5, log.Deliveries.Count);
        Assert.All(log.Deliveries, d => Assert.Equal((DeliveryStatus.Delivered, 1, 200), (d.Status, d.Attempts, d.LastStatusCode)));
        Assert.Equal(got[^1].Id, log.Deliveries[0].EventId); // newest first
        var next = await Admin.ListDeliveriesAsync(new ListDeliveriesRequest { EndpointId = created.Endpoint.Id, PageSize = 10, PageToken = log.NextPageToken });
        Assert.Equal(7, next.Deliveries.Count);
        Assert.Equal("", next.NextPageToken);
    }

    [Fact]
    public async Task A_receiver_down_for_a_while_gets_every_event_afterwards_in_order_once()
    {
        // "Down for a minute", scaled to the test's retry delays (0.2 s doubling to 1 s): 503 for 3 s, then not listening
        // at all for 3 s, then back. Events keep being written the whole time.
        await StartAsync();
        var receiver = await Receiver.StartAsync(_disposables);
        var endpoint = (await Admin.CreateEndpointAsync(new CreateEndpointRequest { Url = receiver.Url, EventTypes = { "WebhookPing" }, Secret = Secret })).Endpoint;

        await WriteAsync(new WebhookPing(1, _run));
        await receiver.WaitForAsync(r => r.Accepted, 1, "the first ping");
        receiver.Status = 503;
        for (var n = 2; n <= 6; n++) { await WriteAsync(new WebhookPing(n, _run)); await Task.Delay(500); }
        var refused = receiver.Requests.Count(r => !r.Accepted);
        Assert.True(refused >= 2, $"the dispatcher retried while the receiver answered 503 ({refused} attempts)");
        await receiver.StopAsync();
        for (var n = 7; n <= 11; n++) { await WriteAsync(new WebhookPing(n, _run)); await Task.Delay(600); }
        var failing = await Admin.ListDeliveriesAsync(new ListDeliveriesRequest { EndpointId = endpoint.Id, Status = DeliveryStatus.Pending });
        var head = Assert.Single(failing.Deliveries);
        Assert.True(head.Attempts >= 3, $"attempts of the head event: {head.Attempts}");
        Assert.NotEqual("", head.LastError);
        output.WriteLine($"head event while down: {head.Attempts} attempts, last error: {head.LastError}");

        receiver.Status = 200;
        await receiver.StartAgainAsync();
        await receiver.WaitForAsync(r => r.Accepted, 11, "every ping after the outage");
        // A marker written afterwards: once it is in, anything sent twice would be too.
        await WriteAsync(new WebhookPing(12, _run));
        var got = await receiver.WaitForAsync(r => r.Accepted && r.N == 12, 1, "the marker");
        got = receiver.Requests.Where(r => r.Accepted).ToList();
        Assert.Equal(Enumerable.Range(1, 12), got.Select(r => r.N));
        Assert.Equal(12, got.Select(r => r.Id).Distinct().Count());
        Assert.All(got, r => Assert.True(r.SignatureValid));

        var after = (await Admin.ListEndpointsAsync(new ListEndpointsRequest())).Endpoints.Single(e => e.Id == endpoint.Id);
        Assert.True(after.Enabled);
        Assert.Equal(0, after.Failures);
        var log = await Admin.ListDeliveriesAsync(new ListDeliveriesRequest { EndpointId = endpoint.Id, PageSize = 20 });
        Assert.Equal(12, log.Deliveries.Count);
        Assert.All(log.Deliveries, d => Assert.Equal(DeliveryStatus.Delivered, d.Status));
        Assert.True(log.Deliveries.Single(d => d.EventId == head.EventId).Attempts > head.Attempts);
        Assert.All(log.Deliveries.Where(d => d.EventId != head.EventId), d => Assert.Equal(1, d.Attempts)); // in order: nothing behind the head was tried
    }

    [Fact]
    public async Task An_endpoint_failing_beyond_the_window_is_disabled_and_a_replay_sends_the_failed_delivery_again()
    {
        await StartAsync(disableAfter: "00:00:02");
        var receiver = await Receiver.StartAsync(_disposables);
        receiver.Status = 500;
        var endpoint = (await Admin.CreateEndpointAsync(new CreateEndpointRequest { Url = receiver.Url, Secret = Secret })).Endpoint;
        await WriteAsync(new WebhookPing(1, _run));
        await WriteAsync(new WebhookPing(2, _run));

        var disabled = await Eventually(async () =>
            (await Admin.ListEndpointsAsync(new ListEndpointsRequest())).Endpoints.SingleOrDefault(e => e.Id == endpoint.Id && !e.Enabled),
            "the endpoint to be disabled");
        output.WriteLine(disabled.DisabledReason);
        Assert.StartsWith("Disabled automatically: failing since", disabled.DisabledReason);
        Assert.Contains("HTTP 500", disabled.DisabledReason);
        Assert.NotNull(disabled.DisabledAt);
        var failed = Assert.Single((await Admin.ListDeliveriesAsync(new ListDeliveriesRequest { EndpointId = endpoint.Id })).Deliveries);
        Assert.Equal(DeliveryStatus.Failed, failed.Status);
        Assert.Equal(500, failed.LastStatusCode);
        Assert.True(failed.Attempts >= 2);
        var attemptsWhenDisabled = receiver.Requests.Count;

        // The receiver is fixed; the operator replays: the failed event and the one behind it arrive, in order.
        receiver.Status = 200;
        var replayed = await Admin.ReplayDeliveriesAsync(new ReplayDeliveriesRequest { EndpointId = endpoint.Id });
        Assert.True(replayed.Endpoint.Enabled);
        Assert.Equal("", replayed.Endpoint.DisabledReason);
        var got = await receiver.WaitForAsync(r => r.Accepted, 2, "the replayed pings");
        Assert.Equal([1, 2], got.Select(r => r.N));
        Assert.True(receiver.Requests.Take(attemptsWhenDisabled).All(r => r.N == 1), "nothing after the head was sent while it failed");
    }

    [Fact]
    public async Task Replay_from_a_token_sends_the_events_after_it_again_with_the_same_ids()
    {
        await StartAsync();
        var receiver = await Receiver.StartAsync(_disposables);
        var endpoint = (await Admin.CreateEndpointAsync(new CreateEndpointRequest { Url = receiver.Url, Secret = Secret, RequestId = "create-" + _run })).Endpoint;
        // The same request_id again: the same endpoint, not a second one.
        Assert.Equal(endpoint.Id, (await Admin.CreateEndpointAsync(new CreateEndpointRequest { Url = receiver.Url, RequestId = "create-" + _run })).Endpoint.Id);
        for (var n = 1; n <= 3; n++) await WriteAsync(new WebhookPing(n, _run));
        var first = await receiver.WaitForAsync(r => r.Accepted, 3, "three pings");

        var log = await Admin.ListDeliveriesAsync(new ListDeliveriesRequest { EndpointId = endpoint.Id });
        var firstToken = log.Deliveries.Single(d => d.EventId == first[0].Id).Token;
        await Admin.ReplayDeliveriesAsync(new ReplayDeliveriesRequest { EndpointId = endpoint.Id, FromToken = firstToken });
        var all = await receiver.WaitForAsync(r => r.Accepted, 5, "the two pings after the first, again");
        Assert.Equal([1, 2, 3, 2, 3], all.Select(r => r.N));
        Assert.Equal(first[1].Id, all[3].Id);
        Assert.Equal(2, (await Admin.ListDeliveriesAsync(new ListDeliveriesRequest { EndpointId = endpoint.Id })).Deliveries.Single(d => d.EventId == first[1].Id).Attempts);

        // Bad input and other callers.
        Assert.Contains("from_token", (await Rpc.FailsWith(StatusCode.InvalidArgument,
            () => Admin.ReplayDeliveriesAsync(new ReplayDeliveriesRequest { EndpointId = endpoint.Id, FromToken = "yesterday" }).ResponseAsync)).Fields());
        Assert.Equal(["event_types", "secret", "url"], (await Rpc.FailsWith(StatusCode.InvalidArgument,
            () => Admin.CreateEndpointAsync(new CreateEndpointRequest { Url = "ftp://x", EventTypes = { "Order Paid" }, Secret = "short" }).ResponseAsync)).Fields());
        foreach (var url in new[] { "https://erp:hunter2@erp.example/hooks", "/hooks", "erp.example/hooks", "http:///hooks" })
            Assert.Equal(["url"], (await Rpc.FailsWith(StatusCode.InvalidArgument,
                () => Admin.CreateEndpointAsync(new CreateEndpointRequest { Url = url }).ResponseAsync)).Fields());
        var partner = new Crm.Webhooks.V1.Webhooks.WebhooksClient(_host.ChannelFor(Roles.Partner, "erp-other"));
        await Rpc.FailsWith(StatusCode.NotFound, () => partner.DisableEndpointAsync(new DisableEndpointRequest { Id = endpoint.Id }).ResponseAsync);
        Assert.Empty((await partner.ListEndpointsAsync(new ListEndpointsRequest())).Endpoints);
        var own = await partner.CreateEndpointAsync(new CreateEndpointRequest { Url = "https://erp.example/hooks" });
        Assert.Equal("erp-other", own.Endpoint.Owner);
        Assert.Single((await partner.ListEndpointsAsync(new ListEndpointsRequest())).Endpoints);
        var store = new Crm.Webhooks.V1.Webhooks.WebhooksClient(_host.ChannelFor(Roles.Store, "till-1"));
        await Rpc.FailsWith(StatusCode.PermissionDenied, () => store.ListEndpointsAsync(new ListEndpointsRequest()).ResponseAsync);
    }

    [Fact]
    public async Task A_partners_endpoint_gets_only_the_events_of_customers_linked_to_its_systems()
    {
        await StartAsync();
        var receiver = await Receiver.StartAsync(_disposables);
        var (erpCustomer, tmallCustomer, nobodys) = (Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid());
        await using (var connection = await _db.OpenConnectionAsync())
            await connection.ExecuteAsync("INSERT INTO partner_links VALUES (@erpCustomer, 'erp'), (@tmallCustomer, 'tmall')", new { erpCustomer, tmallCustomer });
        Crm.Webhooks.V1.Webhooks.WebhooksClient PartnerOf(string system) =>
            new(_host.ChannelWithToken(TestAuth.Token(Roles.Partner, "hooks-" + system, systems: [system])));
        await PartnerOf("erp").CreateEndpointAsync(new CreateEndpointRequest { Url = receiver.Url + "?erp", Secret = Secret });
        await PartnerOf("tmall").CreateEndpointAsync(new CreateEndpointRequest { Url = receiver.Url + "?tmall", Secret = Secret });
        await Admin.CreateEndpointAsync(new CreateEndpointRequest { Url = receiver.Url + "?admin", Secret = Secret });

        await WriteAsync(new WebhookAbout(1, _run, erpCustomer));
        await WriteAsync(new WebhookAbout(2, _run, tmallCustomer));
        await WriteAsync(new WebhookAbout(3, _run, nobodys), new WebhookPing(4, _run)); // nobody's customer; no customer at all
        // Markers, one per partner: each endpoint is served in order, so once its marker is in, nothing before it is still coming.
        await WriteAsync(new WebhookAbout(5, _run, erpCustomer));
        await WriteAsync(new WebhookAbout(6, _run, tmallCustomer));

        await receiver.WaitForAsync(r => r.Query == "?erp" && r.N == 5, 1, "erp's marker");
        await receiver.WaitForAsync(r => r.Query == "?tmall" && r.N == 6, 1, "tmall's marker");
        var admin = await receiver.WaitForAsync(r => r.Query == "?admin", 6, "all six events for the admin endpoint");
        Assert.Equal([1, 5], receiver.Requests.Where(r => r.Query == "?erp").Select(r => r.N));
        Assert.Equal([2, 6], receiver.Requests.Where(r => r.Query == "?tmall").Select(r => r.N));
        Assert.Equal([1, 2, 3, 4, 5, 6], admin.Select(r => r.N));
        Assert.All(receiver.Requests, r => Assert.True(r.SignatureValid));

        // The endpoints remember their owners' systems; staff endpoints none (every event).
        await using (var connection = await _db.OpenConnectionAsync())
        {
            var systems = (await connection.QueryAsync<(string Owner, string[]? Systems)>("SELECT owner, systems FROM webhook_endpoints")).ToDictionary(r => r.Owner, r => r.Systems);
            Assert.Equal(["erp"], systems["hooks-erp"]!);
            Assert.Equal(["tmall"], systems["hooks-tmall"]!);
            Assert.Null(systems[Roles.Admin]);
        }
    }

    [Fact]
    public async Task The_signing_secret_is_stored_encrypted_and_a_row_still_in_clear_is_encrypted_at_start()
    {
        await StartAsync();
        var receiver = await Receiver.StartAsync(_disposables);
        var created = await Admin.CreateEndpointAsync(new CreateEndpointRequest { Url = receiver.Url, Secret = Secret });
        Assert.Equal(Secret, created.Secret); // shown once, in the answer
        var id = Guid.Parse(created.Endpoint.Id);
        (string Secret, string? KeyId) Stored()
        {
            using var connection = _db.OpenConnection();
            return connection.QuerySingle<(string, string?)>("SELECT secret, secret_key_id FROM webhook_endpoints WHERE id = @id", new { id });
        }
        var stored = Stored();
        Assert.Equal(TestAuth.WebhookKeyId, stored.KeyId);
        Assert.DoesNotContain(Secret, stored.Secret);
        Assert.DoesNotContain(Secret, System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(stored.Secret)));
        Assert.Equal(12 + Secret.Length + 16, Convert.FromBase64String(stored.Secret).Length); // nonce, ciphertext, tag
        // Nothing else shows it: listing endpoints gives no secret.
        Assert.DoesNotContain(Secret, (await Admin.ListEndpointsAsync(new ListEndpointsRequest())).ToString());

        await WriteAsync(new WebhookPing(1, _run));
        Assert.True((await receiver.WaitForAsync(r => r.N == 1, 1, "the first ping"))[0].SignatureValid);

        // A row as it was before migration 0006 (secret in clear, no key id): the service encrypts it when it starts
        // (here: the same pass, run directly), and deliveries are still signed with the same secret.
        await using (var connection = await _db.OpenConnectionAsync())
            await connection.ExecuteAsync("UPDATE webhook_endpoints SET secret = @Secret, secret_key_id = NULL WHERE id = @id", new { Secret, id });
        Assert.Equal(1, await _host.Services.GetRequiredService<WebhookStore>().ReencryptSecretsAsync(CancellationToken.None));
        Assert.Equal(TestAuth.WebhookKeyId, Stored().KeyId);
        Assert.NotEqual(Secret, Stored().Secret);
        Assert.NotEqual(stored.Secret, Stored().Secret); // a fresh nonce
        await WriteAsync(new WebhookPing(2, _run));
        Assert.True((await receiver.WaitForAsync(r => r.N == 2, 1, "the second ping"))[0].SignatureValid);
        Assert.Equal(0, await _host.Services.GetRequiredService<WebhookStore>().ReencryptSecretsAsync(CancellationToken.None));

        // Moved to another endpoint's row, a stored secret does not open (it is bound to its endpoint's id).
        var other = await Admin.CreateEndpointAsync(new CreateEndpointRequest { Url = receiver.Url + "?other", Secret = Secret });
        await using (var connection = await _db.OpenConnectionAsync())
            await connection.ExecuteAsync("UPDATE webhook_endpoints SET secret = (SELECT secret FROM webhook_endpoints WHERE id = @id) WHERE id = @other",
                new { id, other = Guid.Parse(other.Endpoint.Id) });
        var store = _host.Services.GetRequiredService<WebhookStore>();
        var moved = await store.GetAsync(Guid.Parse(other.Endpoint.Id), null, CancellationToken.None);
        Assert.ThrowsAny<System.Security.Cryptography.CryptographicException>(() => store.SecretOf(moved));
    }

    [Fact]
    public async Task The_pruner_deletes_old_change_events_but_none_an_enabled_endpoint_has_not_passed()
    {
        await StartAsync(); // retention 2 days
        string Token((string Tx, long Id) e) => $"{e.Tx}-{e.Id}";
        var old = new List<(string Tx, long Id)>();
        await using (var connection = await _db.OpenConnectionAsync())
        {
            for (var n = 1; n <= 3; n++)
                old.Add(await connection.QuerySingleAsync<(string, long)>("""
                    INSERT INTO change_events (event_type, message_id, payload, occurred_at)
                    VALUES ('WebhookPing', gen_random_uuid(), '{}', now() - interval '10 days') RETURNING tx::text, id
                    """));
            await connection.ExecuteAsync("INSERT INTO change_events (event_type, message_id, payload) VALUES ('WebhookPing', gen_random_uuid(), '{}')");
        }
        // An endpoint nobody answers for, moved back to just after the first old event: it has not passed the other two.
        var endpoint = (await Admin.CreateEndpointAsync(new CreateEndpointRequest { Url = $"http://127.0.0.1:{ServiceHost.FreePort()}/gone" })).Endpoint;
        await Admin.ReplayDeliveriesAsync(new ReplayDeliveriesRequest { EndpointId = endpoint.Id, FromToken = Token(old[0]) });
        var pruner = _host.Services.GetServices<IHostedService>().OfType<ChangeEventPruner>().Single();

        Assert.Equal(1, await pruner.PruneAsync(CancellationToken.None));
        Assert.Equal(3, await CountChangeEventsAsync());

        // Disabled, it holds nothing back: the two old ones go, the recent one stays.
        await Admin.DisableEndpointAsync(new DisableEndpointRequest { Id = endpoint.Id });
        Assert.Equal(2, await pruner.PruneAsync(CancellationToken.None));
        Assert.Equal(1, await CountChangeEventsAsync());
    }

    [Fact]
    public async Task Without_an_allowed_network_internal_addresses_are_refused_at_registration_and_a_name_resolving_to_loopback_at_delivery()
    {
        await StartAsync(allowLoopback: false);
        foreach (var (url, what) in new[]
                 {
                     ("http://169.254.169.254/latest/meta-data/iam/security-credentials/", "a link-local address (cloud metadata among them) (169.254.169.254)"),
                     ("http://10.0.0.1/", "a private address (10.0.0.1)"),
                     ("http://127.0.0.1:8080/hooks", "a loopback address (127.0.0.1)"),
                     ("http://[::ffff:192.168.1.1]/hooks", "a private address (::ffff:192.168.1.1)"),
                 })
        {
            var error = await Rpc.FailsWith(StatusCode.InvalidArgument, () => Admin.CreateEndpointAsync(new CreateEndpointRequest { Url = url }).ResponseAsync);
            var violation = Assert.Single(error.GetRpcStatus()!.GetDetail<Google.Rpc.BadRequest>().FieldViolations);
            Assert.Equal(("url", $"must not point at {what}; webhooks go to public addresses only."), (violation.Field, violation.Description));
        }

        // A name is accepted at registration (what it resolves to can change), and checked where it resolves at each delivery.
        var receiver = await Receiver.StartAsync(_disposables);
        var endpoint = (await Admin.CreateEndpointAsync(new CreateEndpointRequest { Url = receiver.Url.Replace("127.0.0.1", "localhost"), Secret = Secret })).Endpoint;
        await WriteAsync(new WebhookPing(1, _run));
        var refused = await Eventually(async () => (await Admin.ListDeliveriesAsync(new ListDeliveriesRequest { EndpointId = endpoint.Id }))
            .Deliveries.SingleOrDefault(d => d.Attempts >= 2), "two refused attempts");
        output.WriteLine(refused.LastError);
        Assert.Equal((DeliveryStatus.Pending, 0), (refused.Status, refused.LastStatusCode));
        Assert.StartsWith("refused: localhost resolves to ", refused.LastError);
        Assert.Contains("a loopback address; webhooks go to public addresses only (Messaging:Webhooks:AllowedPrivateNetworks)", refused.LastError);
        // The logged attempts are the marker: they were made, and not one request reached the receiver.
        Assert.Empty(receiver.Requests);
        var after = (await Admin.ListEndpointsAsync(new ListEndpointsRequest())).Endpoints.Single(e => e.Id == endpoint.Id);
        Assert.True(after.Enabled);
        Assert.True(after.Failures >= 2, $"failures: {after.Failures}");
    }

    [Fact]
    public async Task Delivery_waits_only_for_open_transactions_that_can_still_add_an_earlier_event_and_skips_none()
    {
        await StartAsync();
        var receiver = await Receiver.StartAsync(_disposables);
        await Admin.CreateEndpointAsync(new CreateEndpointRequest { Url = receiver.Url, EventTypes = { "WebhookPing" }, Secret = Secret });

        // Open transactions holding an xid that cannot add a change event here: the outbox relay's (it holds one while the
        // broker confirms a batch) and one in another database of the same server (xids are server-wide).
        var relayLike = new NpgsqlConnectionStringBuilder(suite.Infrastructure.Postgres!.ConnectionString(Database)) { ApplicationName = "webhooktest-outbox-relay" };
        await using var relay = new NpgsqlConnection(relayLike.ConnectionString);
        await using var elsewhere = new NpgsqlConnection(suite.Infrastructure.Postgres.AdminConnectionString);
        var held = new List<NpgsqlTransaction>();
        foreach (var connection in new[] { relay, elsewhere })
        {
            await connection.OpenAsync();
            var tx = await connection.BeginTransactionAsync();
            await connection.ExecuteAsync("SELECT pg_current_xact_id()", transaction: tx);
            held.Add(tx);
        }
        await WriteAsync(new WebhookPing(1, _run));
        await receiver.WaitForAsync(r => r.N == 1, 1, "the ping while the relay's and another database's transactions stay open");

        // A transaction that wrote an event and is still open (an earlier xid): the event committed after it must wait for
        // it, else the cursor passes its row before it becomes visible and that event is never sent.
        var outbox = _host.Services.GetRequiredService<Outbox>();
        await using (var slow = await _db.OpenConnectionAsync())
        await using (var slowTx = await slow.BeginTransactionAsync())
        {
            await outbox.AddAsync(slowTx, new WebhookPing(2, _run));
            await WriteAsync(new WebhookPing(3, _run));
            await Task.Delay(TimeSpan.FromSeconds(1)); // ten polls in which the dispatcher could pass event 2 by
            await slowTx.CommitAsync();
        }
        await WriteAsync(new WebhookPing(4, _run)); // the marker
        await receiver.WaitForAsync(r => r.N == 4, 1, "the marker");
        Assert.Equal([1, 2, 3, 4], receiver.Requests.Select(r => r.N));
        Assert.All(receiver.Requests, r => Assert.True(r.SignatureValid));
        foreach (var tx in held) await tx.RollbackAsync();
    }

    private async Task<long> CountChangeEventsAsync()
    {
        await using var connection = await _db.OpenConnectionAsync();
        return await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM change_events");
    }

    /// <summary>Writes the events in one transaction through the outbox, as a service does.</summary>
    private async Task WriteAsync(params object[] events)
    {
        var outbox = _host.Services.GetRequiredService<Outbox>();
        await using var connection = await _db.OpenConnectionAsync();
        await using var tx = await connection.BeginTransactionAsync();
        foreach (var e in events)
            if (e is WebhookPing ping) await outbox.AddAsync(tx, ping);
            else if (e is WebhookAbout about) await outbox.AddAsync(tx, about);
            else await outbox.AddAsync(tx, (WebhookOther)e);
        await tx.CommitAsync();
    }

    private static async Task<T> Eventually<T>(Func<Task<T?>> probe, string what) where T : class
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            if (await probe() is { } found) return found;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"Timed out waiting for {what}.");
            await Task.Delay(100);
        }
    }

    public sealed record Received(string Query, bool Accepted, bool SignatureValid, string Id, string HeaderId, string Type, int N);

    /// <summary>A partner's receiver: verifies each request with the published scheme and answers <see cref="Status"/>.</summary>
    private sealed class Receiver : IAsyncDisposable
    {
        private readonly int _port = ServiceHost.FreePort();
        private WebApplication? _app;
        public ConcurrentQueue<Received> Requests { get; } = new();
        public volatile int Status = 200;
        public string Url => $"http://127.0.0.1:{_port}/hooks";

        public static async Task<Receiver> StartAsync(List<IAsyncDisposable> owner)
        {
            var receiver = new Receiver();
            owner.Add(receiver);
            await receiver.StartAgainAsync();
            return receiver;
        }

        public async Task StartAgainAsync()
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.UseUrls($"http://127.0.0.1:{_port}");
            _app = builder.Build();
            _app.MapPost("/hooks", async (HttpContext context) =>
            {
                using var buffer = new MemoryStream();
                await context.Request.Body.CopyToAsync(buffer);
                var body = buffer.ToArray();
                var valid = WebhookSignature.Verify(Secret, context.Request.Headers[WebhookSignature.TimestampHeader],
                    context.Request.Headers[WebhookSignature.SignatureHeader], body, DateTimeOffset.UtcNow);
                var json = JsonDocument.Parse(body).RootElement;
                var status = Status;
                Requests.Enqueue(new Received(context.Request.QueryString.Value ?? "", status == 200, valid,
                    json.GetProperty("id").GetString()!, context.Request.Headers[WebhookSignature.IdHeader].ToString(),
                    json.GetProperty("type").GetString()!, json.GetProperty("data").GetProperty("n").GetInt32()));
                return Results.StatusCode(status);
            });
            await _app.StartAsync();
        }

        public async Task StopAsync()
        {
            if (_app is null) return;
            await _app.StopAsync();
            await _app.DisposeAsync();
            _app = null;
        }

        public async Task<List<Received>> WaitForAsync(Func<Received, bool> which, int count, string what)
        {
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (true)
            {
                var got = Requests.Where(which).ToList();
                if (got.Count >= count) return got;
                if (DateTime.UtcNow > deadline) throw new TimeoutException($"Timed out waiting for {what}: {got.Count} of {count}.");
                await Task.Delay(50);
            }
        }

        public ValueTask DisposeAsync() => new(StopAsync());
    }
}
