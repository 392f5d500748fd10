namespace Crm.Campaigns.Models;

/// <summary>
/// Nelder-Mead downhill simplex minimisation (reflection 1, expansion 2, contraction ½, shrink ½), restarted from
/// its own best point until a restart no longer improves: small, derivative-free, enough for 3-4 parameters.
/// </summary>
public static class NelderMead
{
    public sealed record Result(double[] Point, double Value, int Evaluations);

    public static Result Minimize(Func<double[], double> f, double[] start, double step = 0.5, double tolerance = 1e-10,
        int maxEvaluations = 20_000, int restarts = 4)
    {
        var best = Run(f, start, step, tolerance, maxEvaluations);
        var evaluations = best.Evaluations;
        for (var i = 0; i < restarts; i++)
        {
            var again = Run(f, best.Point, step / (i + 2), tolerance, maxEvaluations);
            evaluations += again.Evaluations;
            var improved = again.Value < best.Value - tolerance;
            if (again.Value < best.Value) best = again;
            if (!improved) break;
        }
        return best with { Evaluations = evaluations };
    }

    private static Result Run(Func<double[], double> f, double[] start, double step, double tolerance, int maxEvaluations)
    {
        var n = start.Length;
        var simplex = new double[n + 1][];
        var values = new double[n + 1];
        var evaluations = 0;
        double Eval(double[] x)
        {
            evaluations++;
            var v = f(x);
            return double.IsFinite(v) ? v : double.MaxValue;
        }
        for (var i = 0; i <= n; i++)
        {
            simplex[i] = (double[])start.Clone();
            if (i > 0) simplex[i][i - 1] += step;
            values[i] = Eval(simplex[i]);
        }

        while (evaluations < maxEvaluations)
        {
            var order = Enumerable.Range(0, n + 1).OrderBy(i => values[i]).ToArray();
            simplex = order.Select(i => simplex[i]).ToArray();
            values = order.Select(i => values[i]).ToArray();
            if (Math.Abs(values[n] - values[0]) <= tolerance * (Math.Abs(values[0]) + tolerance)) break;

            var centroid = new double[n];
            for (var i = 0; i < n; i++)
            for (var j = 0; j < n; j++)
                centroid[j] += simplex[i][j] / n;
            double[] Toward(double coefficient) => centroid.Select((c, j) => c + coefficient * (simplex[n][j] - c)).ToArray();

            var reflected = Toward(-1);
            var fr = Eval(reflected);
            if (fr < values[0])
            {
                var expanded = Toward(-2);
                var fe = Eval(expanded);
                (simplex[n], values[n]) = fe < fr ? (expanded, fe) : (reflected, fr);
            }
            else if (fr < values[n - 1])
            {
                (simplex[n], values[n]) = (reflected, fr);
            }
            else
            {
                var outside = fr < values[n];
                var contracted = Toward(outside ? -0.5 : 0.5);
                var fc = Eval(contracted);
                if (fc < (outside ? fr : values[n]))
                {
                    (simplex[n], values[n]) = (contracted, fc);
                }
                else
                {
                    for (var i = 1; i <= n; i++)
                    {
                        simplex[i] = simplex[0].Select((b, j) => b + 0.5 * (simplex[i][j] - b)).ToArray();
                        values[i] = Eval(simplex[i]);
                    }
                }
            }
        }
        var bestIndex = Array.IndexOf(values, values.Min());
        return new Result(simplex[bestIndex], values[bestIndex], evaluations);
    }
}
