await Crm.Campaigns.CampaignsApp.Build(args).RunAsync();
