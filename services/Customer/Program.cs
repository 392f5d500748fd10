await Crm.Customer.CustomerApp.Build(args).RunAsync();
