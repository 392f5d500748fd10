namespace Crm.Campaigns.Models;

/// <summary>
/// One customer's history as the models see it: X repeat purchases (orders after the first), the last at Tx after the
/// first, observed for T since the first (same time unit throughout), and the mean value of the repeat purchases.
/// </summary>
public readonly record struct PurchaseHistory(int X, double Tx, double T, double MeanRepeatValue = 0);

/// <summary>
/// The BG/NBD model (Fader, Hardie &amp; Lee 2005, "Counting Your Customers the Easy Way"): while active a customer buys as
/// a Poisson process with rate λ ~ Gamma(r, α); after each purchase they drop out with probability p ~ Beta(a, b).
/// </summary>
public sealed record BgNbd(double R, double Alpha, double A, double B)
{
    /// <summary>Total log-likelihood of the histories (equation 6 of the paper, in logs).</summary>
    public double LogLikelihood(IReadOnlyList<PurchaseHistory> histories)
    {
        var byX = new Dictionary<int, (double C, double D)>();
        var lnBab = SpecialFunctions.LogBeta(A, B);
        var common = R * Math.Log(Alpha) - SpecialFunctions.LogGamma(R);
        var total = 0.0;
        foreach (var h in histories)
        {
            if (!byX.TryGetValue(h.X, out var k))
            {
                var c = SpecialFunctions.LogGamma(R + h.X) + common + SpecialFunctions.LogBeta(A, B + h.X) - lnBab;
                var d = h.X > 0 ? Math.Log(A) - Math.Log(B + h.X - 1) : double.NegativeInfinity;
                byX[h.X] = k = (c, d);
            }
            var rx = R + h.X;
            total += k.C + SpecialFunctions.LogSumExp(-rx * Math.Log(Alpha + h.T), k.D - rx * Math.Log(Alpha + h.Tx));
        }
        return total;
    }

    /// <summary>P(still active | x, t_x, T).</summary>
    public double ProbabilityAlive(int x, double tx, double t)
    {
        if (x == 0) return 1.0;
        return 1.0 / (1.0 + A / (B + x - 1) * Math.Pow((Alpha + t) / (Alpha + tx), R + x));
    }

    /// <summary>E[Y(t) | x, t_x, T]: purchases expected in the next <paramref name="horizon"/> (equation 10 of the paper).</summary>
    public double ConditionalExpectedPurchases(double horizon, int x, double tx, double t)
    {
        if (horizon <= 0) return 0;
        var z = horizon / (Alpha + t + horizon);
        var hyp = SpecialFunctions.Hyp2F1(R + x, B + x, A + B + x - 1, z);
        var numerator = (A + B + x - 1) / (A - 1) * (1 - Math.Pow((Alpha + t) / (Alpha + t + horizon), R + x) * hyp);
        var denominator = 1 + (x > 0 ? A / (B + x - 1) * Math.Pow((Alpha + t) / (Alpha + tx), R + x) : 0);
        return numerator / denominator;
    }

    /// <summary>E[X(t)]: purchases a new customer is expected to make in <paramref name="horizon"/> (equation 9).</summary>
    public double ExpectedPurchases(double horizon)
    {
        var hyp = SpecialFunctions.Hyp2F1(R, B, A + B - 1, horizon / (Alpha + horizon));
        return (A + B - 1) / (A - 1) * (1 - Math.Pow(Alpha / (Alpha + horizon), R) * hyp);
    }

    /// <summary>Maximum-likelihood fit (Nelder-Mead on the logs of the four parameters).</summary>
    public static (BgNbd Model, double LogLikelihood) Fit(IReadOnlyList<PurchaseHistory> histories)
    {
        if (histories.Count == 0) throw new ArgumentException("No customers to fit.", nameof(histories));
        var meanT = Math.Max(histories.Average(h => h.T), 1e-3);
        double Objective(double[] u)
        {
            if (u.Any(v => Math.Abs(v) > 15)) return double.PositiveInfinity;
            var model = new BgNbd(Math.Exp(u[0]), Math.Exp(u[1]), Math.Exp(u[2]), Math.Exp(u[3]));
            return -model.LogLikelihood(histories);
        }
        var best = NelderMead.Minimize(Objective, [0, Math.Log(meanT), 0, 0]);
        var p = best.Point.Select(Math.Exp).ToArray();
        return (new BgNbd(p[0], p[1], p[2], p[3]), -best.Value);
    }
}

/// <summary>
/// The Gamma-Gamma spend model (Fader, Hardie &amp; Lee 2005, "RFM and CLV"; Fader &amp; Hardie 2013 note): a customer's
/// transaction values are Gamma(p, ν) with ν ~ Gamma(q, γ) across customers. Fitted on customers with repeat purchases,
/// from their number of repeat purchases x and mean repeat value z̄.
/// </summary>
public sealed record GammaGamma(double P, double Q, double Gamma)
{
    public double LogLikelihood(IReadOnlyList<PurchaseHistory> histories)
    {
        var total = 0.0;
        var lnGq = SpecialFunctions.LogGamma(Q);
        var qLnG = Q * Math.Log(Gamma);
        foreach (var h in histories)
        {
            if (h.X <= 0 || h.MeanRepeatValue <= 0) continue;
            var px = P * h.X;
            total += SpecialFunctions.LogGamma(px + Q) - SpecialFunctions.LogGamma(px) - lnGq + qLnG
                     + (px - 1) * Math.Log(h.MeanRepeatValue) + px * Math.Log(h.X) - (px + Q) * Math.Log(Gamma + h.X * h.MeanRepeatValue);
        }
        return total;
    }

    /// <summary>E[M | x, z̄]: the expected value of this customer's future transactions (the population mean when x = 0).</summary>
    public double ExpectedAverageValue(int x, double meanRepeatValue) =>
        x > 0 && meanRepeatValue > 0
            ? (Gamma + x * meanRepeatValue) * P / (P * x + Q - 1)
            : P * Gamma / (Q - 1);

    public static (GammaGamma Model, double LogLikelihood) Fit(IReadOnlyList<PurchaseHistory> histories)
    {
        var repeat = histories.Where(h => h.X > 0 && h.MeanRepeatValue > 0).ToList();
        if (repeat.Count == 0) throw new ArgumentException("No customers with repeat purchases to fit.", nameof(histories));
        var meanValue = repeat.Average(h => h.MeanRepeatValue);
        double Objective(double[] u)
        {
            if (u.Any(v => Math.Abs(v) > 20)) return double.PositiveInfinity;
            return -new GammaGamma(Math.Exp(u[0]), Math.Exp(u[1]), Math.Exp(u[2])).LogLikelihood(repeat);
        }
        var best = NelderMead.Minimize(Objective, [0, 0, Math.Log(meanValue)]);
        var p = best.Point.Select(Math.Exp).ToArray();
        return (new GammaGamma(p[0], p[1], p[2]), -best.Value);
    }
}
