using System.Diagnostics;
using System.Globalization;
using Crm.Customer.V1;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Google.Rpc;
using Grpc.Core;
using Grpc.Net.Client;
using Status = Google.Rpc.Status;

namespace Crm.Import;

/// <summary>
/// <c>import &lt;file.csv|jsonl&gt; [--kind customers|orders|refunds] [--batch-id ID] [--address URL] [--token TOKEN]</c>:
/// streams the file through crm.customer.v1.CustomerImport to the customer service at <c>--address</c> (or
/// <c>CRM_CUSTOMER_ADDRESS</c>; else the running suite's, from the address file in its data folder, <c>--data-dir</c>,
/// default &lt;repository&gt;/.data) with <c>--token</c> (or <c>CRM_TOKEN</c>; <c>./crm import</c> makes a partner token),
/// shows progress, prints a summary. Exit code 0: every row accepted; 1: some rows rejected; 2: the import could not run.
/// </summary>
public static class ImportCommand
{
    private const int ShownRejections = 10;

    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter progress, bool interactive, CancellationToken ct = default)
    {
        string? file = null, kind = null, batchId = null, dataDirectory = null;
        var address = Environment.GetEnvironmentVariable("CRM_CUSTOMER_ADDRESS");
        var token = Environment.GetEnvironmentVariable("CRM_TOKEN");
        for (var i = 0; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
            try
            {
                switch (args[i])
                {
                    case "--kind": kind = Value(); break;
                    case "--batch-id": batchId = Value(); break;
                    case "--address": address = Value(); break;
                    case "--token": token = Value(); break;
                    case "--data-dir": dataDirectory = Value(); break;
                    case var a when a.StartsWith("--", StringComparison.Ordinal): return Usage(progress, $"unknown option {a}.");
                    default:
                        if (file is not null) return Usage(progress, "give one file.");
                        file = args[i];
                        break;
                }
            }
            catch (ArgumentException e) { return Usage(progress, e.Message); }
        }
        if (file is null) return Usage(progress, "which file?");
        if (!File.Exists(file)) return Usage(progress, $"no file {file}.");
        kind ??= Path.GetFileName(file).ToLowerInvariant() switch
        {
            var n when n.StartsWith("customer", StringComparison.Ordinal) => "customers",
            var n when n.StartsWith("order", StringComparison.Ordinal) => "orders",
            var n when n.StartsWith("refund", StringComparison.Ordinal) => "refunds",
            _ => null,
        };
        if (kind is not ("customers" or "orders" or "refunds")) return Usage(progress, "--kind must be customers, orders or refunds.");
        Uri? uri;
        if (string.IsNullOrEmpty(address))
        {
            // The running suite's customer service, from the address file the AppHost keeps in its data folder.
            (uri, var problem) = SuiteAddresses.Grpc(dataDirectory is null ? SuiteAddresses.DefaultDataDirectory() : Path.GetFullPath(dataDirectory), "customer");
            if (uri is null) return Usage(progress, problem!);
        }
        else if (!Uri.TryCreate(address, UriKind.Absolute, out uri))
            return Usage(progress, "--address http://127.0.0.1:<port>: the customer service's grpc endpoint (the table ./crm run prints), or set CRM_CUSTOMER_ADDRESS.");
        if (string.IsNullOrEmpty(token)) return Usage(progress, "--token (or CRM_TOKEN): e.g. $(./crm token --role partner --user erp-import).");
        batchId ??= Path.GetFileName(file);
        if (batchId.Length > 100) return Usage(progress, "--batch-id is at most 100 characters.");

        using var channel = Channel(uri, token);
        var client = new CustomerImport.CustomerImportClient(channel);
        var source = new ImportFile(file, kind switch
        {
            "customers" => UpsertCustomerRequest.Descriptor,
            "orders" => RecordOrderRequest.Descriptor,
            _ => RefundOrderRequest.Descriptor,
        });
        try { source.CheckHeader(); }
        catch (Exception e) when (e is FormatException or IOException) { return Usage(progress, e.Message); }
        var summary = new Summary();
        var watch = Stopwatch.StartNew();
        using var ticker = interactive ? new Timer(_ => progress.Write("\r" + summary.Progress()), null, 500, 500) : null;
        try
        {
            switch (kind)
            {
                case "customers":
                    await StreamAsync(client.ImportCustomers(cancellationToken: ct), source, summary,
                        (line, m) => new ImportCustomerItem { BatchId = batchId, Line = line, Customer = (UpsertCustomerRequest)m }, ct);
                    break;
                case "orders":
                    await StreamAsync(client.ImportOrders(cancellationToken: ct), source, summary,
                        (line, m) => new ImportOrderItem { BatchId = batchId, Line = line, Order = (RecordOrderRequest)m }, ct);
                    break;
                default:
                    await StreamAsync(client.ImportRefunds(cancellationToken: ct), source, summary,
                        (line, m) => new ImportRefundItem { BatchId = batchId, Line = line, Refund = (RefundOrderRequest)m }, ct);
                    break;
            }
        }
        catch (Exception e) when (e is RpcException or FormatException or IOException)
        {
            ticker?.Dispose();
            if (interactive) progress.WriteLine();
            progress.WriteLine($"crm import: stopped after {summary.Answered} rows: {(e is RpcException r ? $"{r.StatusCode}: {r.Status.Detail}" : e.Message)}");
            summary.Print(output, file, kind, batchId, watch.Elapsed);
            return 2;
        }
        ticker?.Dispose();
        if (interactive) progress.WriteLine("\r" + summary.Progress());
        summary.Print(output, file, kind, batchId, watch.Elapsed);
        return summary.Rejected > 0 ? 1 : 0;
    }

    /// <summary>Sends every readable row while the answers are read (HTTP/2 flow control paces the sender); rows that cannot be read are rejected here.</summary>
    private static async Task StreamAsync<TItem>(AsyncDuplexStreamingCall<TItem, ImportItemStatus> call, ImportFile source, Summary summary,
        Func<long, IMessage, TItem> item, CancellationToken ct)
    {
        using (call)
        {
            var sendFailed = false;
            var send = Task.Run(async () =>
            {
                try
                {
                    await foreach (var row in source.ReadAsync().WithCancellation(ct))
                    {
                        if (row.Request is null) { summary.RejectedLocally(row.Line, row.Error!); continue; }
                        await call.RequestStream.WriteAsync(item(row.Line, row.Request), ct);
                        summary.Sent();
                    }
                    await call.RequestStream.CompleteAsync();
                }
                catch
                {
                    // The file cannot be read on (or the call broke): end the call, or the reader would wait for answers forever.
                    sendFailed = true;
                    call.Dispose();
                    throw;
                }
            }, ct);
            try
            {
                await foreach (var status in call.ResponseStream.ReadAllAsync(ct)) summary.Add(status);
            }
            catch (RpcException) when (Volatile.Read(ref sendFailed)) { } // the sender's error is the one to report
            finally
            {
                if (!send.IsCompleted) await Task.WhenAny(send);
            }
            await send;
        }
    }

    private static GrpcChannel Channel(Uri address, string token)
    {
        var credentials = CallCredentials.FromInterceptor((_, metadata) =>
        {
            metadata.Add("Authorization", "Bearer " + token);
            return Task.CompletedTask;
        });
        return GrpcChannel.ForAddress(address, new GrpcChannelOptions
        {
            Credentials = ChannelCredentials.Create(address.Scheme == "https" ? ChannelCredentials.SecureSsl : ChannelCredentials.Insecure, credentials),
            UnsafeUseInsecureChannelCallCredentials = address.Scheme == "http", // the local suite listens on loopback http
        });
    }

    private static int Usage(TextWriter error, string problem)
    {
        error.WriteLine($"crm import: {problem}");
        error.WriteLine("usage: ./crm import <file.csv|jsonl> [--kind customers|orders|refunds] [--batch-id ID] [--address URL | --data-dir DIR] [--token TOKEN]");
        return 2;
    }

    /// <summary>Counts by outcome and the first rejections, updated from two tasks.</summary>
    private sealed class Summary
    {
        private readonly Lock _lock = new();
        private readonly List<(long Line, string Why)> _rejections = [];
        private long _sent, _created, _updated, _unchanged, _rejected;

        public long Rejected => Interlocked.Read(ref _rejected);
        public long Answered => Interlocked.Read(ref _created) + Interlocked.Read(ref _updated) + Interlocked.Read(ref _unchanged) + Rejected;

        public void Sent() => Interlocked.Increment(ref _sent);

        public void RejectedLocally(long line, string why) => Reject(line, why);

        public void Add(ImportItemStatus status)
        {
            switch (status.Outcome)
            {
                case ImportOutcome.Created: Interlocked.Increment(ref _created); break;
                case ImportOutcome.Updated: Interlocked.Increment(ref _updated); break;
                case ImportOutcome.Unchanged: Interlocked.Increment(ref _unchanged); break;
                default: Reject(status.Line, Describe(status.Error)); break;
            }
        }

        private void Reject(long line, string why)
        {
            Interlocked.Increment(ref _rejected);
            lock (_lock) if (_rejections.Count < ShownRejections) _rejections.Add((line, why));
        }

        public string Progress() =>
            $"{Answered:N0} rows answered ({Interlocked.Read(ref _sent):N0} sent): {Interlocked.Read(ref _created):N0} created, " +
            $"{Interlocked.Read(ref _updated):N0} updated, {Interlocked.Read(ref _unchanged):N0} unchanged, {Rejected:N0} rejected";

        public void Print(TextWriter output, string file, string kind, string batchId, TimeSpan elapsed)
        {
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{file} ({kind}, batch {batchId}): {Answered:N0} rows in {elapsed.TotalSeconds:0.0} s"));
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"created {Interlocked.Read(ref _created)}, updated {Interlocked.Read(ref _updated)}, unchanged {Interlocked.Read(ref _unchanged)}, rejected {Rejected}"));
            lock (_lock)
                foreach (var (line, why) in _rejections.OrderBy(r => r.Line))
                    output.WriteLine($"  line {line}: {why}");
            if (Rejected > _rejections.Count) output.WriteLine($"  … and {Rejected - _rejections.Count} more rejected rows");
        }

        private static string Describe(Status? error)
        {
            if (error is null) return "rejected";
            var code = ((StatusCode)error.Code).ToString();
            var violations = error.Details.Where(d => d.Is(BadRequest.Descriptor)).SelectMany(d => d.Unpack<BadRequest>().FieldViolations)
                .Select(v => $"{v.Field}: {v.Description}").ToList();
            return violations.Count > 0 ? $"{code}: {string.Join("; ", violations)}" : $"{code}: {error.Message}";
        }
    }
}
