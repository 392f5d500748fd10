// ./crm import <file.csv|jsonl> [--kind customers|orders|refunds] [--batch-id ID] [--address URL | --data-dir DIR] [--token TOKEN]
return await Crm.Import.ImportCommand.RunAsync(args, Console.Out, Console.Error, interactive: !Console.IsErrorRedirected);
