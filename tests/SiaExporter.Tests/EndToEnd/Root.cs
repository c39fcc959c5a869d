namespace SiaExporter.Tests.EndToEnd;

/// <summary>Root check for the fixtures. The tests themselves use [KernelFact] / [KernelTheory]
/// (skipped when not root, failing under CI=true).</summary>
public static class Root
{
    public static bool IsRoot => KernelTestEnvironment.IsRoot;

    public static bool IsCi => KernelTestEnvironment.IsCi;

    public static void Require()
    {
        if (!IsRoot)
            throw new InvalidOperationException("end-to-end tests need root (CI=true forbids skipping them)");
    }
}
