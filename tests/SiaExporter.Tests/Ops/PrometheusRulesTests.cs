using Xunit;
using Xunit.Abstractions;

namespace SiaExporter.Tests.Ops;

/// <summary>prometheus/rules.yml is valid and its unit tests (prometheus/tests/rules_test.yml) pass.</summary>
public sealed class PrometheusRulesTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private static string PromDir => Path.Combine(OpsTools.RepoRoot, "prometheus");

    [RequiresToolsFact("promtool")]
    public void Rules_pass_promtool_check()
    {
        var (code, text) = OpsTools.Run(OpsTools.Require("promtool"), PromDir, Timeout, "check", "rules", "rules.yml");
        output.WriteLine(text);
        Assert.True(code == 0, $"promtool check rules failed (exit {code}):\n{text}");
    }

    /// <summary>Every file of prometheus/tests (rules_test.yml, hostd_crosscheck_test.yml, ...).</summary>
    private static List<string> RuleTestFileNames() =>
        Directory.GetFiles(Path.Combine(PromDir, "tests"), "*.yml").Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList()!;

    public static TheoryData<string> RuleTestFiles() => new(RuleTestFileNames());

    [RequiresToolsTheory("promtool")]
    [MemberData(nameof(RuleTestFiles))]
    public void Rule_unit_tests_pass(string file)
    {
        var (code, text) = OpsTools.Run(OpsTools.Require("promtool"), PromDir, Timeout, "test", "rules", Path.Combine("tests", file));
        output.WriteLine(text);
        Assert.True(code == 0, $"promtool test rules {file} failed (exit {code}):\n{text}");
    }

    [Fact]
    public void Both_rule_test_files_are_found()
    {
        var files = RuleTestFileNames();
        Assert.Contains("rules_test.yml", files);
        Assert.Contains("hostd_crosscheck_test.yml", files);
    }

    [RequiresToolsFact("promtool")]
    public void Example_prometheus_config_is_valid()
    {
        var (code, text) = OpsTools.Run(OpsTools.Require("promtool"), PromDir, Timeout, "check", "config", "prometheus.yml");
        output.WriteLine(text);
        Assert.True(code == 0, $"promtool check config failed (exit {code}):\n{text}");
    }
}
