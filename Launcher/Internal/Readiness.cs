using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Crm.Launcher.Internal;

/// <summary>Waiting until a freshly started server answers, with its log tail when it does not.</summary>
internal static class Readiness
{
    public static async Task WaitAsync(string name, ChildProcess process, TimeSpan timeout, Func<CancellationToken, Task<bool>> probe, CancellationToken ct)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(timeout);
        while (true)
        {
            if (process.HasExited)
            {
                var code = await process.Exited;
                throw new InfrastructureException($"{name} exited with code {code} while starting.{Tail(process)}");
            }
            try
            {
                if (await probe(deadline.Token)) return;
                await Task.Delay(100, deadline.Token);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                throw new InfrastructureException($"{name} did not accept connections within {timeout.TotalSeconds:0} s.{Tail(process)}");
            }
        }
    }

    public static string Tail(ChildProcess process)
    {
        var lines = process.RecentOutput(30);
        return lines.Count == 0 ? " It printed nothing." : "\nLast lines of its log:\n  " + string.Join("\n  ", lines);
    }

    /// <summary>Redis answers PING with +PONG (not -LOADING while it reads its data).</summary>
    public static async Task<bool> RedisPingAsync(int port, CancellationToken ct)
    {
        var reply = await ExchangeAsync(port, "PING\r\n"u8.ToArray(), 7, ct);
        return reply is not null && Encoding.ASCII.GetString(reply).StartsWith("+PONG", StringComparison.Ordinal);
    }

    /// <summary>
    /// RabbitMQ answers the AMQP 0-9-1 protocol header with a Connection.Start method frame
    /// (frame type 1, channel 0, class 10, method 10): the broker is up, not just the socket.
    /// </summary>
    public static async Task<bool> AmqpHandshakeAsync(int port, CancellationToken ct)
    {
        var reply = await ExchangeAsync(port, "AMQP\0\0\u0009\u0001"u8.ToArray(), 11, ct);
        return reply is { Length: >= 11 } r && r[0] == 1 && r[1] == 0 && r[2] == 0 && r[7] == 0 && r[8] == 10 && r[9] == 0 && r[10] == 10;
    }

    private static async Task<byte[]?> ExchangeAsync(int port, byte[] request, int replyLength, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(3));
        using var client = new TcpClient();
        try
        {
            await client.ConnectAsync(IPAddress.Loopback, port, timeout.Token);
            var stream = client.GetStream();
            await stream.WriteAsync(request, timeout.Token);
            var reply = new byte[replyLength];
            var read = 0;
            while (read < replyLength)
            {
                var n = await stream.ReadAsync(reply.AsMemory(read), timeout.Token);
                if (n == 0) return null;
                read += n;
            }
            return reply;
        }
        catch (Exception e) when (e is SocketException or IOException || (e is OperationCanceledException && !ct.IsCancellationRequested))
        {
            return null;
        }
    }
}
