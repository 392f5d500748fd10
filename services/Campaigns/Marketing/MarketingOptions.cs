namespace Crm.Campaigns.Marketing;

/// <summary>Settings under <c>Marketing</c>.</summary>
public sealed class MarketingOptions
{
    /// <summary>Messages a customer may get per calendar week (Monday to Sunday in the brand's time zone), across all campaigns.</summary>
    public int FrequencyCapPerWeek { get; set; } = 2;
    /// <summary>Deadline of the customer service call that fetches the {name} of a message.</summary>
    public TimeSpan CustomerCallTimeout { get; set; } = TimeSpan.FromSeconds(2);
    /// <summary>Deadline of the loyalty service call that issues a campaign's coupon; past it the send is deferred.</summary>
    public TimeSpan LoyaltyCallTimeout { get; set; } = TimeSpan.FromSeconds(2);
    /// <summary>What one message costs per channel, in yuan (simulation and ROI).</summary>
    public MessageUnitCosts UnitCost { get; set; } = new();
}

/// <summary>Settings under <c>Marketing:UnitCost</c>: yuan per message.</summary>
public sealed class MessageUnitCosts
{
    public decimal Sms { get; set; } = 0.05m;
    public decimal Email { get; set; } = 0.01m;
    public decimal AppPush { get; set; } = 0.01m;
    public decimal WeChat { get; set; } = 0.02m;

    public decimal For(Crm.Campaigns.V1.CampaignChannel channel) => channel switch
    {
        Crm.Campaigns.V1.CampaignChannel.Sms => Sms,
        Crm.Campaigns.V1.CampaignChannel.Email => Email,
        Crm.Campaigns.V1.CampaignChannel.AppPush => AppPush,
        Crm.Campaigns.V1.CampaignChannel.Wechat => WeChat,
        _ => 0m,
    };
}
