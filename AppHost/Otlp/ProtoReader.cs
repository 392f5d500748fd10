using System.Buffers.Binary;

namespace Crm.AppHost.Otlp;

/// <summary>
/// Reads protobuf's wire format field by field over bytes already in memory, without building messages: the
/// receiver's hot path takes only the few fields the store indexes (see <see cref="OtlpSpans"/>).
/// </summary>
internal ref struct ProtoReader(ReadOnlySpan<byte> data)
{
    public const int Varint = 0, Fixed64 = 1, LengthDelimited = 2, Fixed32 = 5;

    private readonly ReadOnlySpan<byte> _data = data;
    private int _position;

    /// <summary>The next field's number and wire type; false at the end.</summary>
    public bool Next(out int field, out int wireType)
    {
        if (_position >= _data.Length)
        {
            (field, wireType) = (0, 0);
            return false;
        }
        var tag = ReadVarint();
        (field, wireType) = ((int)(tag >> 3), (int)(tag & 7));
        if (field <= 0) throw Malformed();
        return true;
    }

    public ulong ReadVarint()
    {
        ulong result = 0;
        for (var shift = 0; shift < 64; shift += 7)
        {
            if (_position >= _data.Length) throw Malformed();
            var b = _data[_position++];
            result |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return result;
        }
        throw Malformed();
    }

    public ulong ReadFixed64()
    {
        if (_data.Length - _position < 8) throw Malformed();
        var value = BinaryPrimitives.ReadUInt64LittleEndian(_data[_position..]);
        _position += 8;
        return value;
    }

    public ReadOnlySpan<byte> ReadBytes()
    {
        var length = ReadVarint();
        if (length > (ulong)(_data.Length - _position)) throw Malformed();
        var bytes = _data.Slice(_position, (int)length);
        _position += (int)length;
        return bytes;
    }

    /// <summary>Skips a field of the given wire type (groups, deprecated since proto2, are refused).</summary>
    public void Skip(int wireType)
    {
        switch (wireType)
        {
            case Varint: ReadVarint(); break;
            case Fixed64: Advance(8); break;
            case LengthDelimited: ReadBytes(); break;
            case Fixed32: Advance(4); break;
            default: throw Malformed();
        }
    }

    private void Advance(int count)
    {
        if (_data.Length - _position < count) throw Malformed();
        _position += count;
    }

    public static InvalidDataException Malformed() => new("Malformed protobuf message.");
}
