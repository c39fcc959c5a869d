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

    [RequiresToolsFact("promtool")]
    public void Rule_unit_tests_pass()
    {
        var (code, text) = OpsTools.Run(OpsTools.Require("promtool"), PromDir, Timeout, "test", "rules", Path.Combine("tests", "rules_test.yml"));
        output.WriteLine(text);
        Assert.True(code == 0, $"promtool test rules failed (exit {code}):\n{text}");
    }

    [RequiresToolsFact("promtool")]
    public void Example_prometheus_config_is_valid()
    {
        var (code, text) = OpsTools.Run(OpsTools.Require("promtool"), PromDir, Timeout, "check", "config", "prometheus.yml");
        output.WriteLine(text);
        Assert.True(code == 0, $"promtool check config failed (exit {code}):\n{text}");
    }
}
