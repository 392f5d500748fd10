using System.Collections.Concurrent;
using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace Crm.ServiceDefaults.Grpc;

/// <summary>
/// The limits a .proto declares on a field with the custom options of protos/crm/common/v1/field_limits.proto
/// ((crm.common.v1.max_length), (crm.common.v1.max_items)). Read from the serialized field options by field
/// number, so this library needs no reference to the generated code of any service.
/// </summary>
public static class FieldLimits
{
    /// <summary>Field number of (crm.common.v1.max_length); a unit test pins it to the generated extension.</summary>
    public const int MaxLengthOption = 51001;
    /// <summary>Field number of (crm.common.v1.max_items); a unit test pins it to the generated extension.</summary>
    public const int MaxItemsOption = 51002;

    private static readonly ConcurrentDictionary<FieldDescriptor, (int MaxLength, int MaxItems)> Cache = new();

    /// <summary>The declared maximum length in characters, or null when the field declares none.</summary>
    public static int? MaxLength(FieldDescriptor field) => Positive(Get(field).MaxLength);

    /// <summary>The declared maximum number of items, or null when the field declares none.</summary>
    public static int? MaxItems(FieldDescriptor field) => Positive(Get(field).MaxItems);

    private static int? Positive(int value) => value > 0 ? value : null;

    private static (int MaxLength, int MaxItems) Get(FieldDescriptor field) => Cache.GetOrAdd(field, static f =>
    {
        var options = f.GetOptions();
        if (options is null) return (0, 0);
        int maxLength = 0, maxItems = 0;
        var input = new CodedInputStream(options.ToByteArray());
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            var number = WireFormat.GetTagFieldNumber(tag);
            if (WireFormat.GetTagWireType(tag) == WireFormat.WireType.Varint && number is MaxLengthOption or MaxItemsOption)
            {
                var value = input.ReadInt32();
                if (number == MaxLengthOption) maxLength = value; else maxItems = value;
            }
            else input.SkipLastField();
        }
        return (maxLength, maxItems);
    });
}
