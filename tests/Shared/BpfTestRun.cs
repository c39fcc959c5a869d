using SiaExporter.Native;

namespace SiaExporter.TestSupport;

/// <summary>The __sk_buff fields a tc program test run may set (the kernel rejects the others).</summary>
internal readonly record struct SkBuffFields(uint WireLength = 0, uint GsoSegments = 0, uint GsoSize = 0, uint IfIndex = 0, uint Mark = 0);

/// <summary>Result of BPF_PROG_TEST_RUN: the program's return value and the mean time per run.</summary>
internal readonly record struct TestRunResult(uint ReturnValue, uint DurationNs);

/// <summary>Runs a loaded program on a packet in the kernel (bpf_prog_test_run_opts). Test and
/// benchmark support: compiled into tests/SiaExporter.Tests and bench/SiaExporter.Bench.</summary>
internal static unsafe class BpfTestRun
{
    /// <summary>Runs <paramref name="program"/> <paramref name="repeat"/> times on <paramref name="packet"/>;
    /// for tc programs, <paramref name="skb"/> becomes ctx_in (gso_segs, gso_size, wire_len...).</summary>
    public static TestRunResult Run(BpfProgram program, ReadOnlySpan<byte> packet, int repeat = 1, SkBuffFields? skb = null)
    {
        var options = TestRunOptions.Create();
        options.Repeat = repeat;
        options.DataSizeIn = (uint)packet.Length;
        var context = new SkBuffContext();
        if (skb is { } fields)
        {
            context.WireLength = fields.WireLength;
            context.GsoSegments = fields.GsoSegments;
            context.GsoSize = fields.GsoSize;
            context.IfIndex = fields.IfIndex;
            context.Mark = fields.Mark;
        }
        fixed (byte* data = packet)
        {
            options.DataIn = data;
            if (skb is not null)
            {
                options.ContextIn = &context;
                options.ContextSizeIn = (uint)sizeof(SkBuffContext);
            }
            BpfErrors.Check(LibBpf.ProgTestRunOpts(program, &options), "bpf_prog_test_run_opts");
        }
        return new TestRunResult(options.ReturnValue, options.Duration);
    }
}
