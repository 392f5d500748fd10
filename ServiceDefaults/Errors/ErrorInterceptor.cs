using System.Diagnostics;
using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Logging;
using Npgsql;
using Status = Google.Rpc.Status;

namespace Crm.ServiceDefaults.Errors;

/// <summary>
/// Maps domain errors to precise gRPC status codes with google.rpc details (grpc-status-details-bin).
/// Unexpected exceptions are logged with the trace id and returned as INTERNAL without internals.
/// Postgres errors that only bad input can cause (a unique violation lost in a race, a value the database
/// cannot store) are never INTERNAL. The status message and details travel in HTTP/2 trailers, so both are
/// capped: an oversized header block is refused by clients or never arrives.
/// </summary>
public sealed class ErrorInterceptor(ILogger<ErrorInterceptor> logger) : Interceptor
{
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(
        TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(request, context);
        }
        catch (Exception ex) when (ex is not RpcException)
        {
            throw Translate(ex, context);
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(
        TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context,
        ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(request, responseStream, context);
        }
        catch (Exception ex) when (ex is not RpcException)
        {
            throw Translate(ex, context);
        }
    }

    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context,
        DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(requestStream, responseStream, context);
        }
        catch (Exception ex) when (ex is not RpcException)
        {
            throw Translate(ex, context);
        }
    }

    public override async Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(requestStream, context);
        }
        catch (Exception ex) when (ex is not RpcException)
        {
            throw Translate(ex, context);
        }
    }

    /// <summary>The status a failure becomes; also used per item by streaming imports that answer each item on its own.</summary>
    public RpcException Translate(Exception ex, ServerCallContext context)
    {
        switch (ex)
        {
            case ValidationException v:
                logger.LogInformation("{Method} rejected invalid input: {Message}", context.Method,
                    Crm.ServiceDefaults.Security.Pii.Scrub(Echo.Cut(v.Message, MaxMessageLength))); // echoed input may be a phone or e-mail
                return Build(Code.InvalidArgument, v.Message, Violations(v.Violations));

            case NotFoundException n:
                return Build(Code.NotFound, n.Message,
                    new ResourceInfo { ResourceType = n.ResourceType, ResourceName = n.ResourceName, Description = n.Message });

            case AlreadyExistsException a:
                return Build(Code.AlreadyExists, a.Message,
                    new ResourceInfo { ResourceType = a.ResourceType, ResourceName = a.ResourceName, Description = a.Message });

            case PreconditionFailedException p:
                var failure = new PreconditionFailure();
                failure.Violations.Add(new PreconditionFailure.Types.Violation { Type = p.Type, Subject = p.Subject, Description = p.Message });
                return Build(Code.FailedPrecondition, p.Message, failure);

            case ConcurrencyConflictException c:
                var info = new ErrorInfo { Reason = "VERSION_CONFLICT", Domain = "crm" };
                info.Metadata.Add("resource", $"{c.ResourceType}/{c.ResourceName}");
                info.Metadata.Add("expected_version", c.ExpectedVersion.ToString());
                if (c.ActualVersion is { } actual) info.Metadata.Add("actual_version", actual.ToString());
                return Build(Code.Aborted, c.Message, info);

            case Google.Protobuf.InvalidProtocolBufferException unreadable:
                // A message of a stream that is not what the RPC takes (unary requests are caught before: UnreadableRequests).
                logger.LogInformation("{Method} received an unreadable stream message: {Reason}", context.Method, unreadable.Message);
                return Build(Code.InvalidArgument, "A message of the request stream could not be read as the RPC's request type: " +
                    Echo.Cut(unreadable.Message, 200));

            case OperationCanceledException when context.CancellationToken.IsCancellationRequested:
                return Build(Code.Cancelled, "The call was cancelled or its deadline passed.");

            case PostgresException { SqlState: PostgresErrorCodes.UniqueViolation } unique:
                // A repository names the resource where it can; this is the safety net for a race nobody foresaw.
                logger.LogWarning("{Method} hit unique constraint {Constraint} on {Table} (trace {TraceId})",
                    context.Method, unique.ConstraintName, unique.TableName, TraceId());
                return Build(Code.AlreadyExists, $"A {unique.TableName ?? "resource"} with these values already exists.",
                    new ResourceInfo { ResourceType = unique.TableName ?? "", Description = $"unique constraint {unique.ConstraintName}" });

            case PostgresException { SqlState: "22021" or "22P05" or "22001" or "22003" or "22007" or "22008" or "54000" } data:
                logger.LogWarning("{Method} sent a value the database cannot store: {SqlState} on {Column} (trace {TraceId})",
                    context.Method, data.SqlState, data.ColumnName, TraceId());
                return Build(Code.InvalidArgument, "The request holds a value the database cannot store (invalid characters, too long or out of range).",
                    Violations([new FieldViolation(data.ColumnName ?? "", $"cannot be stored ({data.SqlState}).")]));

            case NpgsqlException { IsTransient: true } db:
                logger.LogWarning(db, "{Method} failed on a transient database error (trace {TraceId})", context.Method, TraceId());
                return Build(Code.Unavailable, $"The database is unavailable; retry later (trace {TraceId()}).");

            default:
                logger.LogError(ex, "{Method} failed unexpectedly (trace {TraceId})", context.Method, TraceId());
                return Build(Code.Internal, $"An internal error occurred (trace {TraceId()}).");
        }
    }

    private static string TraceId() => Activity.Current?.TraceId.ToString() ?? "none";

    /// <summary>Characters of grpc-message; percent-encoded UTF-8, so at most ~9 bytes each.</summary>
    public const int MaxMessageLength = 512;
    /// <summary>Serialized bytes of the google.rpc details (base64 in grpc-status-details-bin).</summary>
    public const int MaxDetailsBytes = 4096;
    private const int MaxFieldLength = 200;
    private const int MaxDescriptionLength = 300;

    /// <summary>As many field violations as fit in <see cref="MaxDetailsBytes"/>, then one saying how many were left out.</summary>
    private static BadRequest Violations(IReadOnlyList<FieldViolation> violations)
    {
        var badRequest = new BadRequest();
        var size = 0;
        for (var i = 0; i < violations.Count; i++)
        {
            var violation = new BadRequest.Types.FieldViolation
            {
                Field = Echo.Cut(violations[i].Field, MaxFieldLength), Description = Echo.Cut(violations[i].Description, MaxDescriptionLength),
            };
            size += violation.CalculateSize() + 3;
            if (size > MaxDetailsBytes - 64)
            {
                badRequest.FieldViolations.Add(new BadRequest.Types.FieldViolation
                    { Field = "", Description = $"{violations.Count - i} more violations not shown." });
                break;
            }
            badRequest.FieldViolations.Add(violation);
        }
        return badRequest;
    }

    private static RpcException Build(Code code, string message, params Google.Protobuf.IMessage[] details)
    {
        var status = new Status { Code = (int)code, Message = Echo.Cut(message, MaxMessageLength) };
        foreach (var detail in details)
        {
            var packed = Any.Pack(detail);
            if (status.CalculateSize() + packed.CalculateSize() <= MaxDetailsBytes + 1024) status.Details.Add(packed);
        }
        return status.ToRpcException();
    }
}
