using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;
using Crm.Contracts;
using Crm.IntegrationTests.Support;
using Crm.Messaging;
using Dapper;
using Microsoft.Extensions.DependencyInjection;

namespace Crm.IntegrationTests.Messaging;

public sealed record CustomerAsText(string? CustomerId);
public sealed record CustomerAsNumber(long CustomerId);
public sealed record CustomerInside(Guid? CustomerId, CustomerAsText? Customer);
public sealed record CustomerRenamed([property: JsonPropertyName("customerId")] Guid Client, int N);
public sealed record CustomerConverted([property: JsonConverter(typeof(PrefixedConverter))] Guid CustomerId);
public sealed record CustomerOmittedWhenEmpty([property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] Guid CustomerId, CustomerAsText Customer);

/// <summary>Writes a Guid as "c-" + its text: no longer a UUID in the JSON, whatever the property holds.</summary>
public sealed class PrefixedConverter : JsonConverter<Guid>
{
    public override Guid Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => Guid.Parse(reader.GetString()![2..]);
    public override void Write(Utf8JsonWriter writer, Guid value, JsonSerializerOptions options) => writer.WriteStringValue("c-" + value);
}

/// <summary>
/// The customer a change row names is computed in C# (EventCustomer) instead of by change_event_customer(payload) in
/// Postgres: both must agree on every event the services publish and on the edge cases of the rule.
/// </summary>
[Collection(SuiteCollection.Name)]
public class EventCustomerTests(SuiteFixture suite)
{
    private static readonly Guid A = Guid.Parse("0194c3a1-7e2b-7c3d-9a4f-5b6c7d8e9f01");
    private static readonly Guid B = Guid.Parse("0194c3a1-7e2b-7c3d-9a4f-5b6c7d8e9f02");

    [Fact]
    public async Task For_every_contract_type_the_CSharp_rule_names_the_customer_change_event_customer_reads_from_the_payload()
    {
        var types = typeof(OrderPaid).Assembly.GetExportedTypes()
            .Where(t => t.Namespace == "Crm.Contracts" && t.IsClass && !t.IsAbstract).OrderBy(t => t.Name).ToList();
        Assert.Contains(typeof(CustomerRegistered), types);
        Assert.True(types.Count >= 20, $"only {types.Count} contract types found");
        var compared = 0;
        foreach (var type in types)
            foreach (var withNulls in new[] { false, true })
            {
                var message = Sample(type, withNulls);
                var (payload, csharp) = Rule(type, message);
                var sql = await SqlAsync(payload);
                Assert.True(sql == csharp, $"{type.Name} (nulls: {withNulls}): SQL {sql?.ToString() ?? "null"}, C# {csharp?.ToString() ?? "null"} for {payload}");
                compared++;
            }
        Assert.Equal(types.Count * 2, compared);

        // Concrete values for the shapes that matter.
        Assert.Equal(A, Rule(typeof(OrderPaid), Sample(typeof(OrderPaid), false)).Customer);
        Assert.Equal(A, Rule(typeof(CustomerRegistered), Sample(typeof(CustomerRegistered), false)).Customer);
        Assert.Null(Rule(typeof(CampaignLaunched), Sample(typeof(CampaignLaunched), false)).Customer);
        Assert.Null(Rule(typeof(TaskDue), Sample(typeof(TaskDue), true)).Customer);
    }

    public static TheoryData<object, Guid?> EdgeCases => new()
    {
        { new CustomerAsText("not a uuid"), null },
        { new CustomerAsText(A.ToString().ToUpperInvariant()), A },
        { new CustomerAsText(" " + A), null },
        { new CustomerAsText(A + "\n"), null },
        { new CustomerAsText(A.ToString("N")), null },
        { new CustomerAsText(null), null },
        { new CustomerAsNumber(42), null },
        { new CustomerInside(null, new CustomerAsText(B.ToString())), B },   // JSON null at the top falls through
        { new CustomerInside(A, new CustomerAsText(B.ToString())), A },
        { new CustomerInside(null, null), null },
        { new CustomerRenamed(A, 1), A },
        { new CustomerConverted(A), null },                                  // "c-…" is not a UUID
        { new CustomerOmittedWhenEmpty(Guid.Empty, new CustomerAsText(B.ToString())), B },
        { new CustomerOmittedWhenEmpty(A, new CustomerAsText(B.ToString())), A },
    };

    [Theory]
    [MemberData(nameof(EdgeCases))]
    public async Task Edge_cases_of_the_rule_agree_with_the_SQL_function(object message, Guid? expected)
    {
        var (payload, csharp) = Rule(message.GetType(), message);
        Assert.Equal(expected, csharp);
        Assert.Equal(expected, await SqlAsync(payload));
    }

    [Fact]
    public async Task AddAsync_and_AddRangeAsync_write_the_customer_in_the_change_row_and_the_payload_as_text_in_the_outbox()
    {
        var outbox = suite.Customer.Services.GetRequiredService<Outbox>();
        var run = Guid.NewGuid().ToString("N");
        await using var connection = await suite.CustomerDb.OpenConnectionAsync();
        await using (var tx = await connection.BeginTransactionAsync())
        {
            await outbox.AddAsync(tx, new CustomerInside(null, new CustomerAsText(B.ToString())));
            await outbox.AddRangeAsync(tx, [new CustomerAsText(run), new CustomerAsText(A.ToString()), new CustomerAsText(null)]);
            // Read before commit: the relay deletes published rows, so the outbox side is only visible here.
            var outboxRows = (await connection.QueryAsync<(string Type, string Payload)>(
                "SELECT o.message_type, o.payload FROM outbox_messages o JOIN change_events c ON c.message_id = o.id WHERE c.tx = pg_current_xact_id() ORDER BY o.seq",
                transaction: tx)).ToList();
            Assert.Equal(4, outboxRows.Count);
            Assert.Equal(JsonSerializer.Serialize(new CustomerAsText(run), Outbox.Json), outboxRows[1].Payload);
            Assert.StartsWith("Crm.IntegrationTests.Messaging.CustomerAsText, ", outboxRows[1].Type);
            var changes = (await connection.QueryAsync<(string Type, Guid? Customer, Guid? Sql)>("""
                SELECT event_type, customer_id, change_event_customer(payload) FROM change_events
                WHERE tx = pg_current_xact_id() ORDER BY id
                """, transaction: tx)).ToList();
            Assert.Equal(new (string, Guid?, Guid?)[] { ("CustomerInside", B, B), ("CustomerAsText", null, null), ("CustomerAsText", A, A), ("CustomerAsText", null, null) },
                changes.Select(c => (c.Type, c.Customer, c.Sql)).ToArray());
            await tx.CommitAsync();
        }
        outbox.Wake();
    }

    private static (string Payload, Guid? Customer) Rule(Type type, object message) =>
        ((string, Guid?))typeof(EventCustomerTests).GetMethod(nameof(RuleOf), BindingFlags.NonPublic | BindingFlags.Static)!
            .MakeGenericMethod(type).Invoke(null, [message])!;

    private static (string Payload, Guid? Customer) RuleOf<T>(T message) where T : class
    {
        var payload = JsonSerializer.Serialize(message, Outbox.Json);
        return (payload, EventCustomer.FromJson(payload));
    }

    private async Task<Guid?> SqlAsync(string payload)
    {
        await using var connection = await suite.CustomerDb.OpenConnectionAsync();
        return await connection.ExecuteScalarAsync<Guid?>("SELECT change_event_customer(@payload::jsonb)", new { payload });
    }

    /// <summary>An instance of a contract type: customer ids A (nested ones too), other values made up; nullables null when asked.</summary>
    private static object Sample(Type type, bool withNulls)
    {
        var nullability = new NullabilityInfoContext();
        var constructor = type.GetConstructors().OrderByDescending(c => c.GetParameters().Length).First();
        var args = constructor.GetParameters().Select(p =>
        {
            var nullable = Nullable.GetUnderlyingType(p.ParameterType) is not null
                           || (!p.ParameterType.IsValueType && nullability.Create(p).WriteState == NullabilityState.Nullable);
            if (withNulls && nullable) return null;
            var t = Nullable.GetUnderlyingType(p.ParameterType) ?? p.ParameterType;
            return Value(t, p.Name!, withNulls);
        }).ToArray();
        return constructor.Invoke(args);
    }

    private static object Value(Type t, string name, bool withNulls) => t switch
    {
        _ when t == typeof(Guid) => name.Equals("customerId", StringComparison.OrdinalIgnoreCase) ? A : B,
        _ when t == typeof(string) => name + "-1",
        _ when t == typeof(int) => 3,
        _ when t == typeof(long) => 7L,
        _ when t == typeof(decimal) => 1999.50m,
        _ when t == typeof(bool) => true,
        _ when t == typeof(DateTimeOffset) => new DateTimeOffset(2026, 11, 27, 8, 30, 0, TimeSpan.Zero),
        _ when t == typeof(DateOnly) => new DateOnly(1990, 5, 17),
        _ when t.IsGenericType && t.GetGenericTypeDefinition() == typeof(IReadOnlyList<>) => ListOf(t.GetGenericArguments()[0], name, withNulls),
        _ when t.IsClass => Sample(t, withNulls),
        _ => throw new NotSupportedException($"No sample value for {t.Name} {name}: add one."),
    };

    private static Array ListOf(Type element, string name, bool withNulls)
    {
        var array = Array.CreateInstance(element, 1);
        array.SetValue(Value(element, name, withNulls), 0);
        return array;
    }
}
