namespace SiaExporter.Hosting;

/// <summary>
/// One row of <see cref="SettingsTable"/>: an environment variable with its --kebab-case flag,
/// its default, what it accepts, its help text and the options record property it feeds.
/// </summary>
public abstract class Setting
{
    private protected Setting(string name, Type feeds, string property, string help)
    {
        Name = name;
        Feeds = feeds;
        Property = property;
        Help = help;
    }

    /// <summary>The environment variable: INTERFACE.</summary>
    public string Name { get; }

    /// <summary>The flag of the same name: --interface.</summary>
    public string Flag => FlagOf(Name);

    /// <summary>Other spellings of the flag: Prometheus exporter-toolkit's names (--web.listen-address).</summary>
    public IReadOnlyList<string> Aliases { get; init; } = [];

    /// <summary>A flag that takes no value: present means on (--web.systemd-socket); --flag=off still works.</summary>
    public bool IsSwitch { get; init; }

    /// <summary>The flag may be given several times; the values add up, as a comma-separated list would.</summary>
    public bool Repeatable { get; init; }

    /// <summary>Every flag that sets it: <see cref="Flag"/>, then <see cref="Aliases"/>.</summary>
    public IEnumerable<string> Flags => [Flag, .. Aliases];

    /// <summary>What --help and the docs add to <see cref="Help"/> about the flags.</summary>
    public string FlagNotes =>
        (Aliases.Count > 0 ? $" Also {string.Join(", ", Aliases)}." : "")
        + (Repeatable ? " The flag may be repeated." : "")
        + (IsSwitch ? " The flag alone means on." : "");

    /// <summary>The options record this setting feeds (KernelOptions, WebOptions, …).</summary>
    public Type Feeds { get; }

    /// <summary>The property of <see cref="Feeds"/> it sets.</summary>
    public string Property { get; }

    /// <summary>One or two sentences for --help, collector.env.example and docs/reference.md.</summary>
    public string Help { get; }

    /// <summary>What the value may be ("a whole number from 16 to 16777216"); also the error when it is out of range.</summary>
    public required string Accepts { get; init; }

    /// <summary>A credential: its value is never echoed in an error, and the docs say to keep the file private.</summary>
    public bool Secret { get; init; }

    /// <summary>The default as words, when it depends on the machine or another setting ("the folder of SQLITE_PATH").</summary>
    public string? DefaultWords { get; init; }

    /// <summary>A value shown in collector.env.example when the default is not a fixed value.</summary>
    public string? Example { get; init; }

    /// <summary>The fixed default as written in an environment file ("" for empty), or null when <see cref="DefaultWords"/> says it.</summary>
    public abstract string? DefaultLiteral { get; }

    /// <summary>The default for humans: `16384`, empty, or the words.</summary>
    public string DefaultText => DefaultLiteral switch
    {
        null => DefaultWords ?? "",
        "" => "empty",
        var literal => literal,
    };

    public static string FlagOf(string name) => "--" + name.ToLowerInvariant().Replace('_', '-');

    /// <summary>Parses <paramref name="text"/>; the problems are complete lines for the operator.</summary>
    internal abstract object? ParseOrReport(string text, List<string> problems);
}

/// <summary>A setting whose parsed value is a <typeparamref name="T"/>.</summary>
public sealed class Setting<T> : Setting
{
    private readonly Func<string, T> _parse;
    private readonly Func<T, string>? _format;

    /// <param name="parse">Throws <see cref="FormatException"/> whose message is the rest of the operator's line.</param>
    /// <param name="format">The default as an environment file would hold it; null when <see cref="Setting.DefaultWords"/> describes it.</param>
    internal Setting(string name, Type feeds, string property, T defaultValue, Func<string, T> parse, Func<T, string>? format, string help)
        : base(name, feeds, property, help)
    {
        Default = defaultValue;
        _parse = parse;
        _format = format;
    }

    /// <summary>The value when the setting is absent (a derived default is applied by <see cref="CollectorSettings"/>).</summary>
    public T Default { get; }

    /// <summary>Further problems of a parsed value, each a complete line (INTERFACE names).</summary>
    internal Func<T, IEnumerable<string>>? Check { get; init; }

    public override string? DefaultLiteral => DefaultWords is null && _format is not null ? _format(Default) : null;

    internal override object? ParseOrReport(string text, List<string> problems)
    {
        var shown = Secret ? Name : $"{Name}={text}";
        try
        {
            var value = _parse(text);
            if (Check is not null) problems.AddRange(Check(value));
            return value;
        }
        catch (FormatException e)
        {
            problems.Add($"{shown}: {e.Message}");
        }
        catch (OverflowException)
        {
            problems.Add($"{shown}: expected {Accepts}");
        }
        return null;
    }
}
