await Crm.Sales.SalesApp.Build(args).RunAsync();
