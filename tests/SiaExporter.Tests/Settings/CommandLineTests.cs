using SiaExporter.Hosting;
using Xunit;

namespace SiaExporter.Tests.Settings;

/// <summary>The collector executable built beside the tests: exit codes and the one-line errors an operator sees.</summary>
public sealed class CommandLineTests : IDisposable
{
    private static readonly string Collector = Path.Combine(AppContext.BaseDirectory, "collector");
    private readonly string _emptyConfig = Path.GetTempFileName();

    public void Dispose() => File.Delete(_emptyConfig);

    private Shell.Result Run(params string[] args) => Shell.Try(Collector, ["--config", _emptyConfig, .. args]);

    [Fact]
    public void Bad_settings_exit_2_with_one_line_each_before_touching_the_kernel()
    {
        var r = Run("run", "--interface", "lo", "--max-clients", "3", "--log-top=0");
        Assert.Equal(2, r.ExitCode);
        Assert.Equal(
            "collector: bad setting: MAX_CLIENTS=3: expected a whole number from 16 to 16777216\n" +
            "collector: bad setting: LOG_TOP=0: expected a whole number from 1 to 1000\n", r.Stderr);
        Assert.Equal("", r.Stdout);
    }

    [Fact]
    public void A_bad_value_in_the_config_file_is_reported_like_a_flag()
    {
        File.WriteAllText(_emptyConfig, "XDP_MODE=turbo\n");
        var r = Run("top");
        Assert.Equal(2, r.ExitCode);
        Assert.Equal("collector: bad setting: XDP_MODE=turbo: expected auto, native or generic\n", r.Stderr);
    }

    [Fact]
    public void Help_lists_the_commands_and_every_setting()
    {
        var r = Run("--help");
        Assert.Equal(0, r.ExitCode);
        foreach (var command in new[] { "collector top", "collector export", "collector detach", "collector version", "collector settings" })
            Assert.Contains(command, r.Stdout);
        foreach (var s in SettingsTable.All) Assert.Contains($"{s.Name} / {s.Flag}", r.Stdout);
    }

    [Fact]
    public void Settings_prints_what_make_docs_writes()
    {
        var env = Run("settings", "--env-example");
        Assert.Equal(0, env.ExitCode);
        Assert.Equal(SettingsDocs.EnvExample(), env.Stdout);
        var markdown = Run("settings", "--markdown");
        Assert.Equal(0, markdown.ExitCode);
        Assert.Equal(SettingsDocs.Markdown(), markdown.Stdout);
    }

    [Theory]
    [InlineData("frobnicate")]
    [InlineData("settings", "--yaml")]
    public void An_unknown_command_or_argument_exits_2(params string[] args)
    {
        var r = Run(args);
        Assert.Equal(2, r.ExitCode);
        Assert.StartsWith("collector: ", r.Stderr);
    }
}
