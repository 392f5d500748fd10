using System.Buffers;
using Grpc.Core;

namespace Crm.AppHost.Otlp;

/// <summary>
/// OTLP/gRPC's TraceService/Export with the request taken as bytes (a pooled buffer) rather than the generated
/// message: the store decodes only what it indexes (<see cref="OtlpSpans"/>). The response is the empty
/// ExportTraceServiceResponse. Bound like generated code binds a service, by <see cref="BindService"/>.
/// </summary>
[BindServiceMethod(typeof(RawTraceReceiver), nameof(BindService))]
internal class RawTraceReceiver(TelemetryStore store)
{
    private static readonly Method<Payload, byte[]> ExportMethod = new(
        MethodType.Unary, "opentelemetry.proto.collector.trace.v1.TraceService", nameof(Export),
        Marshallers.Create<Payload>((_, _) => throw new NotSupportedException(), Payload.Read),
        Marshallers.Create<byte[]>(response => response, _ => throw new NotSupportedException()));

    public static void BindService(ServiceBinderBase binder, RawTraceReceiver? service) =>
        binder.AddMethod(ExportMethod, service is null ? null : (UnaryServerMethod<Payload, byte[]>)service.Export);

    /// <summary>Virtual because Grpc.AspNetCore binds only a virtual method declared by the bound type.</summary>
    public virtual Task<byte[]> Export(Payload request, ServerCallContext context)
    {
        try { store.AddTraces(request.Bytes); }
        catch (InvalidDataException e) { throw new RpcException(new Status(StatusCode.InvalidArgument, e.Message)); }
        finally { request.Return(); }
        return Task.FromResult(Array.Empty<byte>());
    }

    /// <summary>The request's bytes in a buffer rented from the shared pool, returned once the store has read them.</summary>
    internal sealed class Payload(byte[] buffer, int length)
    {
        public ReadOnlySpan<byte> Bytes => buffer.AsSpan(0, length);
        public void Return() => ArrayPool<byte>.Shared.Return(buffer);

        public static Payload Read(DeserializationContext context)
        {
            var sequence = context.PayloadAsReadOnlySequence();
            var buffer = ArrayPool<byte>.Shared.Rent((int)sequence.Length);
            sequence.CopyTo(buffer);
            return new Payload(buffer, (int)sequence.Length);
        }
    }
}
