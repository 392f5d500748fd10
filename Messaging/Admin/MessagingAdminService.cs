using Crm.ServiceDefaults.Security;
using System.Globalization;
using Crm.Messaging.Parking;
using Crm.ServiceDefaults.Errors;
using Crm.Ops.V1;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using ParkedMessage = Crm.Ops.V1.ParkedMessage;

namespace Crm.Messaging.Admin;

/// <summary>crm.ops.v1.MessagingAdmin: list and replay this service's parked messages (see messaging_admin.proto).</summary>
public sealed class MessagingAdminService(ParkedMessages parked, MessagingStats stats) : MessagingAdmin.MessagingAdminBase
{
    private const int DefaultPageSize = 50;
    private const int MaxPageSize = 500;
    private const int MaxConsumerLength = 200;
    private const int MaxPageTokenLength = 100;

    [Allow(Roles.Admin)]
    public override async Task<ListParkedMessagesResponse> ListParkedMessages(ListParkedMessagesRequest request, ServerCallContext context)
    {
        if (request.PageSize is < 0 or > MaxPageSize) throw Invalid("page_size", $"must be between 0 and {MaxPageSize}");
        var afterId = 0L;
        if (request.PageToken.Length > 0
            && (request.PageToken.Length > MaxPageTokenLength
                || !long.TryParse(request.PageToken, NumberStyles.None, CultureInfo.InvariantCulture, out afterId)))
            throw Invalid("page_token", "is not a token from a previous response");
        var size = request.PageSize == 0 ? DefaultPageSize : request.PageSize;

        var rows = await parked.ListAsync(Status(request.Status), Consumer(request.Consumer), afterId, size + 1, context.CancellationToken);
        var response = new ListParkedMessagesResponse();
        response.Messages.AddRange(rows.Take(size).Select(ToWire));
        if (rows.Count > size) response.NextPageToken = rows[size - 1].Id.ToString(CultureInfo.InvariantCulture);
        return response;
    }

    [Allow(Roles.Admin)]
    public override async Task<ReplayParkedMessagesResponse> ReplayParkedMessage(ReplayParkedMessageRequest request, ServerCallContext context)
    {
        if (request.Id <= 0) throw Invalid("id", "must be positive");
        var count = await parked.ReplayAsync(request.Id, null, null, context.CancellationToken);
        if (count == 0) throw new NotFoundException("parked message", request.Id.ToString(CultureInfo.InvariantCulture));
        return new ReplayParkedMessagesResponse { Replayed = count };
    }

    [Allow(Roles.Admin)]
    public override async Task<ReplayParkedMessagesResponse> ReplayParkedMessages(ReplayParkedMessagesRequest request, ServerCallContext context) =>
        new() { Replayed = await parked.ReplayAsync(null, Status(request.Status), Consumer(request.Consumer), context.CancellationToken) };

    [Allow(Roles.Admin)]
    public override async Task<MessagingStatus> GetMessagingStatus(GetMessagingStatusRequest request, ServerCallContext context)
    {
        var s = await stats.RefreshAsync(context.CancellationToken);
        return new MessagingStatus { OutboxDead = s.OutboxDead, Parked = s.Parked, Failed = s.Failed };
    }

    private static string? Status(ParkedStatus status) => status switch
    {
        ParkedStatus.Unspecified => null,
        ParkedStatus.Parked => ParkedMessages.Parked,
        ParkedStatus.Failed => ParkedMessages.Failed,
        _ => throw Invalid("status", "is not a known ParkedStatus"),
    };

    private static string? Consumer(string consumer)
    {
        if (consumer.Length > MaxConsumerLength) throw Invalid("consumer", $"is longer than {MaxConsumerLength} characters");
        return consumer.Length == 0 ? null : consumer;
    }

    private static ParkedMessage ToWire(Parking.ParkedMessage m) => new()
    {
        Id = m.Id,
        MessageId = m.MessageId.ToString(),
        Consumer = m.Consumer,
        Queue = m.Queue,
        MessageType = m.MessageType,
        Payload = m.Payload,
        Headers = m.Headers,
        Status = m.Status == ParkedMessages.Failed ? ParkedStatus.Failed : ParkedStatus.Parked,
        Attempts = m.Attempts,
        FirstFailedAt = Timestamp.FromDateTime(DateTime.SpecifyKind(m.FirstFailedAt, DateTimeKind.Utc)),
        LastFailedAt = Timestamp.FromDateTime(DateTime.SpecifyKind(m.LastFailedAt, DateTimeKind.Utc)),
        NextAttemptAt = Timestamp.FromDateTime(DateTime.SpecifyKind(m.NextAttemptAt, DateTimeKind.Utc)),
        LastError = m.LastError,
    };

    private static ValidationException Invalid(string field, string problem) => new(field, problem);
}
