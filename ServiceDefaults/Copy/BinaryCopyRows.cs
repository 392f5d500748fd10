using System.Buffers.Binary;
using System.Text;
using Npgsql;

namespace Crm.ServiceDefaults.Copy;

/// <summary>
/// Rows in PostgreSQL's binary COPY format, encoded straight into a byte buffer that is sent through a raw COPY stream
/// (<c>NpgsqlConnection.BeginRawBinaryCopyAsync</c>). Npgsql's <c>NpgsqlBinaryImporter</c> resolves, binds and writes each value
/// through a parameter object: about 0.3 µs a column, which made the recompute's COPY of 25-column score rows cost the
/// service about 10 µs of CPU a row. Every value is encoded here as Npgsql encodes it (the same bytes; the integration
/// tests compare the two), so the table receives the same values. The campaign recompute writes its score rows with it, the
/// bulk order import its four COPYs a batch (orders, outbox, change feed, audit).
/// </summary>
public sealed class BinaryCopyRows
{
    /// <summary>Send the buffer once it holds this much (a row is added whole, so it may go a little past).</summary>
    public const int FlushAt = 64 * 1024;

    // "PGCOPY\n\377\r\n\0", no flags, no header extension.
    private static ReadOnlySpan<byte> Header => [(byte)'P', (byte)'G', (byte)'C', (byte)'O', (byte)'P', (byte)'Y', (byte)'\n', 0xFF, (byte)'\r', (byte)'\n', 0, 0, 0, 0, 0, 0, 0, 0, 0];
    private const long PostgresEpochTicks = 630822816000000000L; // 2000-01-01 UTC
    private const short NumericNegative = 0x4000;

    private byte[] _buffer = new byte[FlushAt + 4096];
    private int _length;

    public BinaryCopyRows() => Append(Header);

    /// <summary>
    /// <paramref name="count"/> rows through a raw binary COPY (<paramref name="copyFromStdin"/> names the table and columns),
    /// <paramref name="encode"/> writing row i.
    /// </summary>
    public static Task CopyAsync(NpgsqlConnection connection, string copyFromStdin, int count, Action<BinaryCopyRows, int> encode,
        CancellationToken ct) =>
        CopyAsync(connection, copyFromStdin, Enumerable.Range(0, count), encode, ct);

    /// <summary>
    /// One row per item through a raw binary COPY (<paramref name="copyFromStdin"/> names the table and columns),
    /// <paramref name="encode"/> writing an item's row; sent every <see cref="FlushAt"/> bytes. A server error (a constraint)
    /// is the PostgresException Npgsql's importer would throw; any other failure cancels the COPY.
    /// </summary>
    public static async Task CopyAsync<T>(NpgsqlConnection connection, string copyFromStdin, IEnumerable<T> items,
        Action<BinaryCopyRows, T> encode, CancellationToken ct)
    {
        await using var copy = await connection.BeginRawBinaryCopyAsync(copyFromStdin, ct);
        try
        {
            var rows = new BinaryCopyRows();
            foreach (var item in items)
            {
                encode(rows, item);
                if (rows.Length < FlushAt) continue;
                await copy.WriteAsync(rows.Written, ct);
                rows.Clear();
            }
            rows.End();
            await copy.WriteAsync(rows.Written, ct);
        }
        catch (Exception e) when (e is not PostgresException)
        {
            await copy.CancelAsync(); // not a COPY of the rows so far
            throw;
        }
    }

    /// <summary>The bytes encoded since the last <see cref="Clear"/>.</summary>
    public ReadOnlyMemory<byte> Written => _buffer.AsMemory(0, _length);
    public int Length => _length;
    public void Clear() => _length = 0;

    public void StartRow(short fields) => BinaryPrimitives.WriteInt16BigEndian(Take(2), fields);

    /// <summary>The end-of-data marker, after the last row.</summary>
    public void End() => BinaryPrimitives.WriteInt16BigEndian(Take(2), -1);

    public void Null() => BinaryPrimitives.WriteInt32BigEndian(Take(4), -1);

    public void Int16(short value) => BinaryPrimitives.WriteInt16BigEndian(Field(2), value);
    public void Int32(int value) => BinaryPrimitives.WriteInt32BigEndian(Field(4), value);
    public void Int64(long value) => BinaryPrimitives.WriteInt64BigEndian(Field(8), value);
    public void Float8(double value) => BinaryPrimitives.WriteDoubleBigEndian(Field(8), value);

    public void Uuid(Guid value) => value.TryWriteBytes(Field(16), bigEndian: true, out _);

    /// <summary>A timestamptz: microseconds since 2000-01-01 UTC, the extra precision dropped and the extremes as ±infinity (as Npgsql does).</summary>
    public void TimestampTz(DateTime value)
    {
        if (value.Kind != DateTimeKind.Utc)
            throw new ArgumentException($"A timestamptz needs a UTC DateTime, not Kind={value.Kind}.", nameof(value));
        var micros = value.Ticks == DateTime.MaxValue.Ticks ? long.MaxValue
            : value.Ticks == DateTime.MinValue.Ticks ? long.MinValue
            : (value.Ticks - PostgresEpochTicks) / 10;
        Int64(micros);
    }

    public void Text(string value)
    {
        var bytes = Encoding.UTF8.GetByteCount(value);
        Encoding.UTF8.GetBytes(value, Field(bytes));
    }

    public void TextOrNull(string? value)
    {
        if (value is null) Null();
        else Text(value);
    }

    public void UuidOrNull(Guid? value)
    {
        if (value is { } v) Uuid(v);
        else Null();
    }

    /// <summary>A jsonb from its JSON text: format version 1, then the text (Postgres parses it, as from Npgsql's importer).</summary>
    public void Jsonb(string json)
    {
        var bytes = Encoding.UTF8.GetByteCount(json);
        var field = Field(1 + bytes);
        field[0] = 1;
        Encoding.UTF8.GetBytes(json, field[1..]);
    }

    /// <summary>
    /// A numeric: base-10000 digits around the decimal point, the decimal's scale as the display scale (the column's type
    /// modifier then rounds to its own scale, as for any other client).
    /// </summary>
    public void Numeric(decimal value)
    {
        Span<int> bits = stackalloc int[4];
        decimal.GetBits(value, bits);
        var scale = (bits[3] >> 16) & 0xFF;
        var negative = bits[3] < 0;
        var mantissa = new UInt128((uint)bits[2], ((ulong)(uint)bits[1] << 32) | (uint)bits[0]);
        // Whole groups of four digits after the point: pad the scale up to a multiple of four.
        var pad = (4 - scale % 4) % 4;
        for (var i = 0; i < pad; i++) mantissa *= 10;
        var fractionGroups = (scale + pad) / 4;

        Span<short> groups = stackalloc short[10]; // least significant first; 2^96 × 1000 has 32 digits
        var count = 0;
        if (mantissa <= ulong.MaxValue)
            for (var m = (ulong)mantissa; m != 0; m /= 10_000) groups[count++] = (short)(m % 10_000);
        else
            for (var m = mantissa; m != 0; m /= 10_000) groups[count++] = (short)(ulong)(m % 10_000);
        var low = 0;
        while (low < count && groups[low] == 0) low++; // trailing zero groups are left out
        var digits = count - low;
        var field = Field(8 + 2 * digits);
        BinaryPrimitives.WriteInt16BigEndian(field, (short)digits);
        BinaryPrimitives.WriteInt16BigEndian(field[2..], (short)(digits == 0 ? 0 : count - fractionGroups - 1));
        BinaryPrimitives.WriteInt16BigEndian(field[4..], negative && digits > 0 ? NumericNegative : (short)0);
        BinaryPrimitives.WriteInt16BigEndian(field[6..], (short)scale);
        for (var i = 0; i < digits; i++) BinaryPrimitives.WriteInt16BigEndian(field[(8 + 2 * i)..], groups[count - 1 - i]);
    }

    /// <summary>A field's length and then room for its <paramref name="bytes"/>.</summary>
    private Span<byte> Field(int bytes)
    {
        var span = Take(4 + bytes);
        BinaryPrimitives.WriteInt32BigEndian(span, bytes);
        return span[4..];
    }

    private Span<byte> Take(int bytes)
    {
        if (_length + bytes > _buffer.Length) Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _length + bytes));
        var span = _buffer.AsSpan(_length, bytes);
        _length += bytes;
        return span;
    }

    private void Append(ReadOnlySpan<byte> bytes) => bytes.CopyTo(Take(bytes.Length));
}
