await Crm.Loyalty.LoyaltyApp.Build(args).RunAsync();
