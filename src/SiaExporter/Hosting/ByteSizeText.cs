using System.Globalization;

namespace SiaExporter.Hosting;

/// <summary>Byte amounts as operators write them: 500GB, 2TB, 1.5TiB, 1000000 (bytes); SI and IEC units.</summary>
public static class ByteSizeText
{
    public const string Accepts = "a byte amount like 500GB, 2TB or 1.5TiB (SI or IEC units), empty for none";

    private static readonly (string Unit, decimal Factor)[] Units =
    [
        ("KIB", 1L << 10), ("MIB", 1L << 20), ("GIB", 1L << 30), ("TIB", 1L << 40), ("PIB", 1L << 50),
        ("KB", 1_000M), ("MB", 1_000_000M), ("GB", 1_000_000_000M), ("TB", 1_000_000_000_000M), ("PB", 1_000_000_000_000_000M),
        ("B", 1M),
    ];

    public static long Parse(string text)
    {
        var t = text.Trim().Replace(" ", "", StringComparison.Ordinal).ToUpperInvariant();
        var factor = 1M;
        foreach (var (unit, f) in Units)
        {
            if (!t.EndsWith(unit, StringComparison.Ordinal)) continue;
            t = t[..^unit.Length];
            factor = f;
            break;
        }
        if (!decimal.TryParse(t, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var n) || n <= 0)
            throw new FormatException("expected " + Accepts);
        var bytes = n * factor;
        return bytes <= long.MaxValue ? (long)decimal.Round(bytes) : throw new FormatException("too large");
    }

    /// <summary>The shortest exact SI form: 2000000000000 → 2TB, 1234 → 1234B.</summary>
    public static string Format(long bytes)
    {
        foreach (var (unit, factor) in Units.Where(u => u.Unit.Length == 2).Reverse())
            if (bytes >= factor && bytes % factor == 0) return $"{bytes / factor:0}{unit}";
        return bytes.ToString(CultureInfo.InvariantCulture) + "B";
    }
}
