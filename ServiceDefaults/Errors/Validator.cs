namespace Crm.ServiceDefaults.Errors;

/// <summary>Collects every field violation of a request, then throws them together.</summary>
public sealed class Validator
{
    private readonly List<FieldViolation> _violations = [];

    public bool IsValid => _violations.Count == 0;

    public Validator Add(string field, string description)
    {
        _violations.Add(new FieldViolation(field, description));
        return this;
    }

    public Validator Require(bool condition, string field, string description)
    {
        if (!condition) Add(field, description);
        return this;
    }

    public void ThrowIfInvalid()
    {
        if (_violations.Count > 0) throw new ValidationException(_violations.ToArray());
    }
}
