using System.Globalization;
using Crm.Common.V1;
using Crm.Customer.V1;
using Crm.Loyalty.V1;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Grpc.Net.Client;

namespace Crm.EndToEndTests;

/// <summary>The customer and loyalty services as a client sees them: the calls the end-to-end tests make.</summary>
internal sealed class Suite(GrpcChannel customerChannel, GrpcChannel loyaltyChannel) : IDisposable
{
    public CustomerService.CustomerServiceClient Customers { get; } = new(customerChannel);
    public LoyaltyService.LoyaltyServiceClient Loyalty { get; } = new(loyaltyChannel);

    /// <summary>Channels with an admin token got as the README says (<c>./crm token --role admin</c>).</summary>
    public static async Task<Suite> ConnectAsync(AppHostRun appHost)
    {
        var token = await CrmToken.GetAsync(appHost.Folder, "admin");
        return new(CrmToken.Channel(await appHost.GrpcUrlAsync("customer"), token), CrmToken.Channel(await appHost.GrpcUrlAsync("loyalty"), token));
    }

    public async Task<string> CreateCustomerAsync(string name)
    {
        var phone = "139" + Random.Shared.NextInt64(10_000_000, 99_999_999).ToString(CultureInfo.InvariantCulture);
        var requestId = Guid.NewGuid().ToString();
        var created = await RetryAsync(() => Customers.CreateCustomerAsync(new CreateCustomerRequest
        {
            Profile = new CustomerProfile { Name = name, Phone = phone, Email = $"{requestId[..8]}@example.com", SourceChannel = "store" },
            RequestId = requestId,
        }, deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync, TimeSpan.FromSeconds(60));
        return created.Id;
    }

    /// <summary>
    /// RecordOrder as an ERP pushes it: on a failure (a server being restarted) the same call is sent
    /// again with the same external order id, its idempotency key, until <paramref name="giveUpAfter"/>.
    /// Returns the order and how many attempts failed.
    /// </summary>
    public async Task<(Order Order, int FailedAttempts)> RecordOrderAsync(string customerId, string externalOrderId, decimal amountPaid, TimeSpan giveUpAfter)
    {
        var amount = amountPaid.ToString("0.00", CultureInfo.InvariantCulture);
        var request = new RecordOrderRequest
        {
            CustomerId = customerId,
            ExternalOrderId = externalOrderId,
            StoreId = "SH-001",
            Channel = "store",
            Lines = { new OrderLine { Sku = "RING-18K-001", ProductName = "18K ring", Quantity = 1, UnitPrice = new Money { Amount = amount } } },
            AmountPaid = new Money { Amount = amount },
            PaymentMethod = "card",
            PaidAt = Timestamp.FromDateTime(DateTime.UtcNow.AddMinutes(-1)),
        };
        var failed = 0;
        var order = await RetryAsync(() => Customers.RecordOrderAsync(request, deadline: DateTime.UtcNow.AddSeconds(10)).ResponseAsync,
            giveUpAfter, () => failed++);
        return (order, failed);
    }

    /// <summary>The account once <paramref name="done"/> holds (polled every 250 ms), or the last one seen when the time is up.</summary>
    public async Task<Account?> WaitForAccountAsync(string customerId, Func<Account, bool> done, TimeSpan timeout)
    {
        Account? last = null;
        for (var deadline = DateTime.UtcNow + timeout; DateTime.UtcNow < deadline; await Task.Delay(250))
        {
            try
            {
                last = await Loyalty.GetAccountAsync(new GetAccountRequest { CustomerId = customerId }, deadline: DateTime.UtcNow.AddSeconds(10));
                if (done(last)) return last;
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.NotFound or StatusCode.Unavailable or StatusCode.Internal or StatusCode.DeadlineExceeded or StatusCode.Unknown) { }
        }
        return last;
    }

    /// <summary>Every ledger entry of the customer, newest first (all pages).</summary>
    public async Task<List<LedgerEntry>> LedgerAsync(string customerId)
    {
        var entries = new List<LedgerEntry>();
        var token = "";
        do
        {
            var page = await Loyalty.ListLedgerAsync(new ListLedgerRequest { CustomerId = customerId, PageSize = 200, PageToken = token },
                deadline: DateTime.UtcNow.AddSeconds(10));
            entries.AddRange(page.Entries);
            token = page.NextPageToken;
        } while (token.Length > 0);
        return entries;
    }

    private static async Task<T> RetryAsync<T>(Func<Task<T>> call, TimeSpan giveUpAfter, Action? onFailure = null)
    {
        var deadline = DateTime.UtcNow + giveUpAfter;
        while (true)
        {
            try
            {
                return await call();
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.Internal or StatusCode.Unknown
                                             or StatusCode.DeadlineExceeded or StatusCode.Aborted or StatusCode.ResourceExhausted
                                         && DateTime.UtcNow < deadline)
            {
                onFailure?.Invoke();
                await Task.Delay(200);
            }
        }
    }

    public void Dispose()
    {
        customerChannel.Dispose();
        loyaltyChannel.Dispose();
    }
}
