using System.Net;
using System.Net.Sockets;

namespace Crm.Launcher;

/// <summary>Free loopback ports: bind to port 0 and let the kernel choose.</summary>
public static class Ports
{
    private static readonly HashSet<int> HandedOut = [];

    /// <summary>
    /// A free port on 127.0.0.1, never one already handed out by this process. When
    /// <paramref name="preferred"/> is free it is returned, so a kept data folder keeps its ports.
    /// </summary>
    public static int GetFree(int? preferred = null)
    {
        lock (HandedOut)
        {
            if (preferred is > 0 and < 65536 && !HandedOut.Contains(preferred.Value) && IsFree(preferred.Value))
            {
                HandedOut.Add(preferred.Value);
                return preferred.Value;
            }
            while (true)
            {
                var listener = new TcpListener(IPAddress.Loopback, 0);
                listener.Start();
                var port = ((IPEndPoint)listener.LocalEndpoint).Port;
                listener.Stop();
                if (HandedOut.Add(port)) return port;
            }
        }
    }

    public static bool IsFree(int port)
    {
        try
        {
            var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            listener.Stop();
            return true;
        }
        catch (SocketException) { return false; }
    }

    /// <summary>True when something accepts TCP connections on 127.0.0.1:port.</summary>
    public static async Task<bool> AcceptsAsync(int port, CancellationToken ct = default)
    {
        using var client = new TcpClient();
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(2));
            await client.ConnectAsync(IPAddress.Loopback, port, timeout.Token);
            return true;
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            return false;
        }
    }
}
