using System.Text;
using SiaExporter.Counters;

namespace SiaExporter.Metrics;

/// <summary>
/// The publication state on disk (<c>STATE_DIRECTORY/metrics-state.bin</c>), so a restarted
/// daemon serves the same series from the same values and nothing goes down. Written only when
/// the set of series or a restarted entry changes the meaning of the numbers (values that only
/// grow are recomputed from the kernel after a restart), by <see cref="PublicationStateSaver"/>
/// right after the scrape that made the change and at stop, via a temporary file, fsync and
/// rename. Binary, little-endian, with an FNV-1a checksum.
/// </summary>
internal static class PublicationStateFile
{
    public const string FileName = "metrics-state.bin";
    private static readonly byte[] Magic = "SIAMETS1"u8.ToArray();

    public static string PathIn(string directory) => Path.Combine(directory, FileName);

    public static void Write(string path, PublicationState state)
    {
        using var buffer = new MemoryStream(4096 + state.Clients.Count * (24 + state.Lanes * 24));
        using (var w = new BinaryWriter(buffer, Encoding.UTF8, leaveOpen: true))
        {
            w.Write(Magic);
            w.Write(state.Generation.ToString());
            w.Write(state.Ports);
            w.Write(state.Lanes);
            WriteLanes(w, state.HostKernel);
            WriteLanes(w, state.HostPublished);
            WriteLanes(w, state.Other);
            w.Write(state.OverflowKernel);
            w.Write(state.OverflowPublished);
            w.Write(state.Clients.Count);
            Span<byte> key = stackalloc byte[16];
            foreach (var client in state.Clients.Values)
            {
                client.Address.WriteKernelKey(key);
                w.Write(key);
                w.Write(client.LastChanged.UtcTicks);
                WriteLanes(w, client.Kernel);
                WriteLanes(w, client.Published);
                WriteLanes(w, client.Pending);
            }
            w.Write(Fnv1a(buffer.GetBuffer().AsSpan(0, (int)buffer.Length)));
        }

        var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(directory);
        var temporary = path + ".tmp";
        using (var file = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            file.Write(buffer.GetBuffer().AsSpan(0, (int)buffer.Length));
            file.Flush(flushToDisk: true);
        }
        File.Move(temporary, path, overwrite: true);
    }

    /// <summary>The saved state, or null with the reason when there is none or it is unusable.</summary>
    public static PublicationState? TryRead(string path, out string? problem)
    {
        problem = null;
        if (!File.Exists(path)) return null;
        try
        {
            var bytes = File.ReadAllBytes(path);
            if (bytes.Length < Magic.Length + 8 || !bytes.AsSpan(0, Magic.Length).SequenceEqual(Magic))
            {
                problem = "not a metrics state file";
                return null;
            }
            var body = bytes.AsSpan(0, bytes.Length - 8);
            if (BitConverter.ToUInt64(bytes, bytes.Length - 8) != Fnv1a(body))
            {
                problem = "checksum mismatch";
                return null;
            }
            using var r = new BinaryReader(new MemoryStream(bytes, Magic.Length, bytes.Length - 8 - Magic.Length), Encoding.UTF8);
            var generation = MapGeneration.Parse(r.ReadString());
            var ports = r.ReadString();
            var lanes = r.ReadInt32();
            if (lanes <= 0 || lanes > 1024) throw new InvalidDataException($"{lanes} lanes");
            var state = new PublicationState(generation, ports, lanes) { Empty = false };
            ReadLanes(r, state.HostKernel);
            ReadLanes(r, state.HostPublished);
            ReadLanes(r, state.Other);
            state.OverflowKernel = r.ReadUInt64();
            state.OverflowPublished = r.ReadUInt64();
            var count = r.ReadInt32();
            if (count < 0) throw new InvalidDataException($"{count} clients");
            for (var i = 0; i < count; i++)
            {
                var address = ClientAddress.FromKernelKey(r.ReadBytes(16));
                var client = new PublishedClient(address, lanes)
                {
                    LastChanged = new DateTimeOffset(r.ReadInt64(), TimeSpan.Zero),
                };
                ReadLanes(r, client.Kernel);
                ReadLanes(r, client.Published);
                ReadLanes(r, client.Pending);
                state.Clients.Add(address, client);
            }
            return state;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException
                                      or InvalidDataException or ArgumentException or EndOfStreamException)
        {
            problem = e.Message;
            return null;
        }
    }

    private static void WriteLanes(BinaryWriter w, ulong[] values)
    {
        foreach (var v in values) w.Write(v);
    }

    private static void ReadLanes(BinaryReader r, ulong[] values)
    {
        for (var i = 0; i < values.Length; i++) values[i] = r.ReadUInt64();
    }

    private static ulong Fnv1a(ReadOnlySpan<byte> data)
    {
        var hash = 14695981039346656037UL;
        foreach (var b in data)
        {
            hash ^= b;
            hash *= 1099511628211UL;
        }
        return hash;
    }
}
