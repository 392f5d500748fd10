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

    private RpcException Translate(Exception ex, ServerCallContext context)
    {
        switch (ex)
        {
            case ValidationException v:
                logger.LogInformation("{Method} rejected invalid input: {Message}", context.Method, v.Message);
                var badRequest = new BadRequest();
                badRequest.FieldViolations.AddRange(v.Violations.Select(f =>
                    new BadRequest.Types.FieldViolation { Field = f.Field, Description = f.Description }));
                return Build(Code.InvalidArgument, v.Message, badRequest);

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

            case OperationCanceledException when context.CancellationToken.IsCancellationRequested:
                return Build(Code.Cancelled, "The call was cancelled or its deadline passed.");

            case NpgsqlException { IsTransient: true } db:
                logger.LogWarning(db, "{Method} failed on a transient database error (trace {TraceId})", context.Method, TraceId());
                return Build(Code.Unavailable, $"The database is unavailable; retry later (trace {TraceId()}).");

            default:
                logger.LogError(ex, "{Method} failed unexpectedly (trace {TraceId})", context.Method, TraceId());
                return Build(Code.Internal, $"An internal error occurred (trace {TraceId()}).");
        }
    }

    private static string TraceId() => Activity.Current?.TraceId.ToString() ?? "none";

    private static RpcException Build(Code code, string message, params Google.Protobuf.IMessage[] details)
    {
        var status = new Status { Code = (int)code, Message = message };
        foreach (var detail in details) status.Details.Add(Any.Pack(detail));
        return status.ToRpcException();
    }
}
