using Dapper;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Npgsql;

namespace Crm.ServiceDefaults.Security.Audit;

/// <summary>
/// The audit log of a service's writes (and of refused calls: <see cref="DeniedAttempts"/>). The <see cref="AuditInterceptor"/> notes the call (caller, RPC,
/// the request's idempotency key and target id); the code that commits a write calls
/// <see cref="RecordAsync"/> with its transaction just before the commit, so the row exists exactly when
/// the change does. Outside a gRPC call (consumers, background jobs) it records nothing.
/// </summary>
public static class Audit
{
    internal static readonly AsyncLocal<AuditCall?> Current = new();

    /// <summary>Appends the current call to audit_events in <paramref name="tx"/>; <paramref name="targetId"/> overrides the request's.</summary>
    public static async Task RecordAsync(NpgsqlTransaction tx, string? targetId, CancellationToken ct)
    {
        if (Current.Value is not { } call) return;
        await tx.Connection!.ExecuteAsync(new CommandDefinition("""
            INSERT INTO audit_events (subject, role, client_id, rpc, target_id, idempotency_key, outcome)
            VALUES (@Subject, @Role, @ClientId, @Rpc, @TargetId, @IdempotencyKey, @Outcome)
            """,
            new { call.Caller.Subject, call.Caller.Role, call.Caller.ClientId, call.Rpc, TargetId = targetId ?? call.TargetId, call.IdempotencyKey, call.Outcome },
            tx, cancellationToken: ct));
    }

    /// <summary>
    /// The row <see cref="RecordAsync"/> would append, as a command to run in an <see cref="NpgsqlBatch"/> with the write's
    /// own statements (one round trip less on a hot write path); null outside a gRPC call.
    /// </summary>
    public static NpgsqlBatchCommand? BatchCommand(string? targetId)
    {
        if (Current.Value is not { } call) return null;
        var command = new NpgsqlBatchCommand("""
            INSERT INTO audit_events (subject, role, client_id, rpc, target_id, idempotency_key, outcome)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            """);
        foreach (var value in new[] { call.Caller.Subject, call.Caller.Role, call.Caller.ClientId, call.Rpc, targetId ?? call.TargetId, call.IdempotencyKey, call.Outcome })
            command.Parameters.Add(new NpgsqlParameter { Value = (object?)value ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        return command;
    }

    /// <summary>
    /// The current call repeats an earlier one with the same idempotency key and changes nothing: its row says
    /// <c>REPLAYED</c>, so the log does not show two writes where there was one.
    /// </summary>
    public static void MarkReplayed()
    {
        if (Current.Value is { } call) call.Outcome = Replayed;
    }

    public const string Replayed = "REPLAYED";

    /// <summary>
    /// For calls the interceptor cannot note (each item of a streaming import): the writes made until the
    /// returned scope is disposed are recorded as <paramref name="request"/> of this call, as a unary call would be.
    /// </summary>
    public static IDisposable Begin(ServerCallContext context, IMessage request)
    {
        var previous = Current.Value;
        Current.Value = AuditInterceptor.Note(context, request);
        return new Scope(previous);
    }

    private sealed class Scope(AuditCall? previous) : IDisposable
    {
        public void Dispose() => Current.Value = previous;
    }
}

internal sealed record AuditCall(Caller Caller, string Rpc, string? TargetId, string? IdempotencyKey)
{
    public string Outcome { get; set; } = "OK";
}

/// <summary>Notes who calls which RPC for <see cref="Audit.RecordAsync"/>; reads the request's key and target fields by name.</summary>
public sealed class AuditInterceptor : Interceptor
{
    private static readonly string[] KeyFields = ["idempotency_key", "refund_id", "request_id", "external_order_id"];
    private static readonly string[] TargetFields = ["order_id", "customer_id", "id", "reward_id", "code"];

    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context,
        UnaryServerMethod<TRequest, TResponse> continuation)
    {
        if (request is not IMessage message || context.GetHttpContext().User.Identity?.IsAuthenticated != true)
            return await continuation(request, context);
        var call = Note(context, message);
        Audit.Current.Value = call;
        try { return await continuation(request, context); }
        catch (RpcException e) when (e.StatusCode == StatusCode.PermissionDenied)
        {
            // Refused by the handler (a member naming another customer): on the record like a refused role.
            await DeniedAttempts.RecordAsync(context.GetHttpContext().RequestServices, call.Caller, call.Rpc, call.TargetId, call.IdempotencyKey);
            throw;
        }
        finally { Audit.Current.Value = null; }
    }

    internal static AuditCall Note(ServerCallContext context, IMessage message)
    {
        var fields = Fields.GetOrAdd(message.Descriptor, static d => (Candidates(d, TargetFields), Candidates(d, KeyFields)));
        return new(context.Caller(), context.Method, First(message, fields.Targets), First(message, fields.Keys));
    }

    /// <summary>Per request type, the string fields of <paramref name="names"/> it has, in that order (looked up once, not per call).</summary>
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<MessageDescriptor, (FieldDescriptor[] Targets, FieldDescriptor[] Keys)> Fields = new();

    private static FieldDescriptor[] Candidates(MessageDescriptor descriptor, string[] names) =>
        [.. names.Select(descriptor.FindFieldByName).Where(f => f is { FieldType: FieldType.String, IsRepeated: false })];

    private static string? First(IMessage message, FieldDescriptor[] fields)
    {
        foreach (var field in fields)
            if (field.Accessor.GetValue(message) is string { Length: > 0 } value)
                return value.Trim();
        return null;
    }
}
