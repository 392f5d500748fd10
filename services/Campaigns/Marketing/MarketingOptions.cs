namespace Crm.Campaigns.Marketing;

/// <summary>Settings under <c>Marketing</c>.</summary>
public sealed class MarketingOptions
{
    /// <summary>Messages a customer may get per calendar week (Monday to Sunday in the brand's time zone), across all campaigns.</summary>
    public int FrequencyCapPerWeek { get; set; } = 2;
    /// <summary>Deadline of the customer service call that fetches the {name} of a message.</summary>
    public TimeSpan CustomerCallTimeout { get; set; } = TimeSpan.FromSeconds(2);
}
