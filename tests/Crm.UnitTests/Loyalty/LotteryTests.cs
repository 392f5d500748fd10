using Crm.Loyalty.Rewards;
using Crm.Loyalty.V1;

namespace Crm.UnitTests.Loyalty;

public class LotteryTests
{
    private static PrizeRecord Prize(string id, double probability, int stock = -1, PrizeKind kind = PrizeKind.Points) =>
        new(id, id, kind, probability, stock, kind == PrizeKind.Points ? 30 : 0, null);

    // Chances 0.05 (grand), 0.15 (second), 0.30 (third): [0, 0.05) grand, [0.05, 0.20) second, [0.20, 0.50) third, [0.50, 1) nothing.
    private static readonly PrizeRecord[] Table = [Prize("grand", 0.05, stock: 1), Prize("second", 0.15), Prize("third", 0.30)];

    [Theory]
    [InlineData(0.0, "grand")]
    [InlineData(0.0499, "grand")]
    [InlineData(0.05, "second")]
    [InlineData(0.1999, "second")]
    [InlineData(0.20, "third")]
    [InlineData(0.4999, "third")]
    [InlineData(0.50, null)]
    [InlineData(0.9999999, null)]
    public void A_uniform_number_falls_in_one_prize_s_slice_of_0_to_1(double u, string? expected) =>
        Assert.Equal(expected, LotteryPicker.Pick(u, Table)?.Id);

    [Fact]
    public void A_prize_out_of_stock_gives_nothing_and_leaves_the_other_chances_alone()
    {
        PrizeRecord[] table = [Prize("grand", 0.05, stock: 0), Prize("second", 0.15), Prize("third", 0.30)];
        Assert.Null(LotteryPicker.Pick(0.01, table));
        Assert.Equal("second", LotteryPicker.Pick(0.05, table)?.Id);
        Assert.Equal("third", LotteryPicker.Pick(0.45, table)?.Id);
    }

    [Fact]
    public void A_certain_prize_is_won_by_every_number_and_an_impossible_one_by_none()
    {
        PrizeRecord[] table = [Prize("never", 0.0), Prize("always", 1.0)];
        foreach (var u in new[] { 0.0, 0.3, 0.999999999999 })
            Assert.Equal("always", LotteryPicker.Pick(u, table)?.Id);
    }

    [Fact]
    public void Chances_that_fill_0_to_1_leave_no_gap_from_rounding()
    {
        var table = Enumerable.Range(0, 10).Select(i => Prize($"p{i}", 0.1)).ToArray(); // adds up to 0.9999999999999999
        Assert.Equal("p9", LotteryPicker.Pick(0.99999999999999994, table)?.Id);
        Assert.Equal("p0", LotteryPicker.Pick(0.0, table)?.Id);
    }

    [Fact]
    public void A_nothing_prize_in_the_table_is_returned_by_name()
    {
        PrizeRecord[] table = [Prize("thanks", 0.9, kind: PrizeKind.Nothing), Prize("points", 0.1)];
        Assert.Equal(PrizeKind.Nothing, LotteryPicker.Pick(0.5, table)!.Kind);
        Assert.Equal("points", LotteryPicker.Pick(0.95, table)?.Id);
    }

    [Theory]
    [InlineData(-0.1)]
    [InlineData(1.0)]
    [InlineData(double.NaN)]
    public void Numbers_outside_0_to_1_are_a_bug(double u) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => LotteryPicker.Pick(u, Table));

    [Fact]
    public void The_secure_random_source_stays_in_0_to_1()
    {
        var random = new SecureLotteryRandom();
        var draws = Enumerable.Range(0, 10_000).Select(_ => random.NextDouble()).ToList();
        Assert.All(draws, d => Assert.InRange(d, 0.0, 0.9999999999999999));
        Assert.InRange(draws.Average(), 0.45, 0.55);
    }

    [Fact]
    public void Coupon_codes_are_12_unambiguous_characters()
    {
        var codes = Enumerable.Range(0, 1_000).Select(_ => CouponCodes.New()).ToList();
        Assert.All(codes, c => Assert.Matches("^[2-9A-HJ-NP-Z]{12}$", c));
        Assert.Equal(codes.Count, codes.Distinct().Count());
        Assert.Equal("ABCD2345WXYZ", CouponCodes.Normalize("  abcd2345wxyz "));
    }
}
