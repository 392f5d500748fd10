using Crm.Sales;
using Crm.Sales.Opportunities;

namespace Crm.UnitTests.Sales;

/// <summary>The furthest stage an opportunity reached, which the stage-conversion report counts.</summary>
public class FurthestStageTests
{
    private static readonly Pipeline Default = new(SalesOptions.DefaultStages);

    private static string? After(params string[] moves) =>
        moves.Aggregate((string?)null, (furthest, code) => Default.Furthest(furthest, Default.Get(code)));

    [Fact]
    public void A_step_back_or_a_loss_keeps_the_furthest_stage_and_won_is_past_every_open_stage()
    {
        Assert.Equal(["qualification", "needs_analysis", "design_proposal", "negotiation", "won"], Default.Ladder.Select(s => s.Code));
        Assert.Equal("qualification", After("qualification"));
        Assert.Equal("negotiation", After("qualification", "negotiation", "needs_analysis"));
        Assert.Equal("design_proposal", After("qualification", "design_proposal", "lost"));
        Assert.Equal("won", After("qualification", "negotiation", "won", "needs_analysis"));
        Assert.Equal((-1, -1, 4), (Default.Progress("lost"), Default.Progress("closing"), Default.Progress("won")));
    }

    [Fact]
    public void A_custom_pipeline_orders_progress_by_its_own_stages()
    {
        var custom = new Pipeline([
            new StageOptions { Code = "visit", Probability = 30 }, new StageOptions { Code = "won", Probability = 100 },
            new StageOptions { Code = "sketch", Probability = 60 }, new StageOptions { Code = "lost", Probability = 0 },
        ]);
        Assert.Equal(["visit", "sketch", "won"], custom.Ladder.Select(s => s.Code));
        Assert.Equal("sketch", custom.Furthest("visit", custom.Get("sketch")));
        Assert.Equal("won", custom.Furthest("sketch", custom.Get("won")));
        Assert.Equal("sketch", custom.Furthest("sketch", custom.Get("visit")));
    }
}
