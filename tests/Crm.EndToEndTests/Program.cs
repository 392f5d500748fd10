using Crm.Launcher;

namespace Crm.EndToEndTests;

/// <summary>
/// The test assembly doubles as a tiny helper console: <c>dotnet Crm.EndToEndTests.dll launcher-host DIR</c>
/// starts the infrastructure in DIR, prints <c>READY pid pid pid</c> and waits to be killed
/// (<see cref="OrphanTests"/> SIGKILLs it and checks that the watchdogs stop the servers).
/// </summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (args is not ["launcher-host", var folder]) return 2;
        var infrastructure = await Infrastructure.StartAsync(new InfrastructureOptions
        {
            DataDirectory = folder,
            Durable = false,
            Databases = ["a"],
        });
        Console.WriteLine($"READY {infrastructure.Postgres!.ProcessId} {infrastructure.Redis!.ProcessId} {infrastructure.RabbitMq!.ProcessId}");
        await Task.Delay(Timeout.Infinite);
        return 0;
    }
}
