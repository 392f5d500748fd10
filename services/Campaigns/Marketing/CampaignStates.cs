using Crm.Campaigns.V1;

namespace Crm.Campaigns.Marketing;

/// <summary>draft → scheduled → running ⇄ paused → finished, and scheduled back to draft; nothing else.</summary>
public static class CampaignStates
{
    private static readonly Dictionary<CampaignState, CampaignState[]> Moves = new()
    {
        [CampaignState.Draft] = [CampaignState.Scheduled],
        [CampaignState.Scheduled] = [CampaignState.Running, CampaignState.Draft],
        [CampaignState.Running] = [CampaignState.Paused, CampaignState.Finished],
        [CampaignState.Paused] = [CampaignState.Running, CampaignState.Finished],
        [CampaignState.Finished] = [],
    };

    public static bool CanMove(CampaignState from, CampaignState to) => Moves.TryGetValue(from, out var next) && next.Contains(to);

    public static string Key(CampaignState state) => state.ToString().ToLowerInvariant();

    public static CampaignState Parse(string key) => Enum.Parse<CampaignState>(key, ignoreCase: true);
}
