namespace Crm.Campaigns.Models;

/// <summary>The special functions the lifetime-value models need: log-gamma and the Gauss hypergeometric 2F1.</summary>
public static class SpecialFunctions
{
    private static readonly double[] Lanczos =
    [
        0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
        12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
    ];

    /// <summary>ln Γ(x) for x &gt; 0 (Lanczos, g = 7, n = 9; relative error about 1e-15).</summary>
    public static double LogGamma(double x)
    {
        if (double.IsNaN(x) || x <= 0) return double.NaN;
        if (x < 0.5) return Math.Log(Math.PI / Math.Sin(Math.PI * x)) - LogGamma(1 - x); // reflection
        x -= 1;
        var sum = Lanczos[0];
        var t = x + 7.5;
        for (var i = 1; i < 9; i++) sum += Lanczos[i] / (x + i);
        return 0.5 * Math.Log(2 * Math.PI) + (x + 0.5) * Math.Log(t) - t + Math.Log(sum);
    }

    /// <summary>ln B(a, b).</summary>
    public static double LogBeta(double a, double b) => LogGamma(a) + LogGamma(b) - LogGamma(a + b);

    /// <summary>
    /// Gauss hypergeometric 2F1(a, b; c; z) for 0 ≤ z &lt; 1 by its power series Σ (a)ₖ(b)ₖ/(c)ₖ zᵏ/k!, summed until a
    /// term no longer changes the sum (what the BG/NBD expectations need: z = t/(α+T+t) &lt; 1, positive a, b, c).
    /// </summary>
    public static double Hyp2F1(double a, double b, double c, double z)
    {
        if (z < 0 || z >= 1) throw new ArgumentOutOfRangeException(nameof(z), z, "2F1 is summed here for 0 <= z < 1 only.");
        double sum = 1, term = 1;
        for (var k = 0; k < 1_000_000; k++)
        {
            term *= (a + k) * (b + k) / ((c + k) * (k + 1)) * z;
            sum += term;
            if (Math.Abs(term) <= 1e-15 * Math.Abs(sum)) return sum;
        }
        return sum;
    }

    /// <summary>log(e^x + e^y) without overflow.</summary>
    public static double LogSumExp(double x, double y)
    {
        if (double.IsNegativeInfinity(x)) return y;
        if (double.IsNegativeInfinity(y)) return x;
        var m = Math.Max(x, y);
        return m + Math.Log(Math.Exp(x - m) + Math.Exp(y - m));
    }
}
