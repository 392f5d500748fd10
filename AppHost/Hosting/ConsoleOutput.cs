namespace Crm.AppHost.Hosting;

/// <summary>Service output echoed on the AppHost console, prefixed with the resource name.</summary>
internal static class ConsoleOutput
{
    private static readonly Lock Gate = new();

    public static int NameWidth { get; set; } = 10;

    public static void WriteResourceLine(string resource, string line)
    {
        lock (Gate) Console.Out.WriteLine($"{resource.PadRight(NameWidth)} | {line}");
    }

    public static void WriteLines(IEnumerable<string> lines)
    {
        lock (Gate)
        {
            foreach (var line in lines) Console.Out.WriteLine(line);
            Console.Out.Flush();
        }
    }
}
