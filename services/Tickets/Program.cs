await Crm.Tickets.TicketsApp.Build(args).RunAsync();
