namespace Crm.AppHost.Hosting;

/// <summary>The table of resources printed once everything is up.</summary>
internal static class ConsoleTable
{
    public static IEnumerable<string> Render(IEnumerable<Resource> resources)
    {
        string[] header = ["Resource", "Type", "State", "Endpoints"];
        var rows = resources.Select(r => new[]
        {
            r.Name,
            r.Type,
            r.Health is { } health ? $"{r.State} ({health})" : r.State.ToString(),
            string.Join(", ", Snapshot(r).Select(e => $"{e.Key} {e.Value}")),
        }).ToList();
        var widths = Enumerable.Range(0, header.Length)
            .Select(i => rows.Select(row => row[i].Length).Append(header[i].Length).Max()).ToArray();
        string Line(string[] cells) => string.Join("  ", cells.Select((c, i) => c.PadRight(widths[i]))).TrimEnd();

        yield return Line(header);
        yield return Line(widths.Select(w => new string('-', w)).ToArray());
        foreach (var row in rows) yield return Line(row);
    }

    public static List<KeyValuePair<string, string>> Snapshot(Resource resource)
    {
        lock (resource.Endpoints) return [.. resource.Endpoints];
    }
}
