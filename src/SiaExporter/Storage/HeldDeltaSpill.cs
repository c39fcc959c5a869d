using SiaExporter.Counters;

namespace SiaExporter.Storage;

/// <summary>
/// Held deltas moved out of memory while the database cannot be written: whole pending buckets
/// appended to <c>SQLITE_PATH.held</c> beside the database (varint-packed, about 30 bytes per client
/// row), read back one bucket at a time by the next successful write, inside its transaction, and
/// deleted after its commit. Not a durability file: the stored baseline is as old as the last
/// commit, so after a crash the next run's first delta covers all of it, and a file left over from
/// an earlier run is deleted at start (<see cref="DiscardStale"/>), never replayed. Not thread-safe.
/// </summary>
internal sealed class HeldDeltaSpill(string databasePath, int slotCount)
{
    public string Path { get; } = databasePath + ".held";

    /// <summary>Buckets in the file (the same bucket may appear more than once: rows add up).</summary>
    public int Buckets { get; private set; }

    /// <summary>Size of the file.</summary>
    public long Bytes { get; private set; }

    /// <summary>Deletes a file an earlier run left (its deltas are covered by the stored baseline); true when there was one.</summary>
    public bool DiscardStale()
    {
        if (!File.Exists(Path)) return false;
        File.Delete(Path);
        return true;
    }

    /// <summary>Appends <paramref name="pending"/> as bucket <paramref name="bucket"/>. Throws IOException when the disk is full too.</summary>
    public void Append(long bucket, PendingBucket pending)
    {
        // The first bucket starts a new file: whatever an undeletable earlier one holds is already written.
        using var stream = new FileStream(Path, Buckets == 0 ? FileMode.Create : FileMode.Append, FileAccess.Write, FileShare.None, 1 << 16);
        var start = stream.Position;
        try
        {
            using var w = new BinaryWriter(stream);
            w.Write(bucket);
            w.Write7BitEncodedInt(pending.Clients.Count);
            foreach (var (ip, slots) in pending.Clients)
            {
                w.Write(ip);
                WriteSlots(w, slots);
            }
            WriteSlots(w, pending.Host);
            w.Flush();
            Bytes = stream.Position;
        }
        catch
        {
            stream.SetLength(start); // no half bucket
            throw;
        }
        Buckets++;
    }

    /// <summary>Every spilled bucket, one at a time (only one in memory).</summary>
    public IEnumerable<KeyValuePair<long, PendingBucket>> Read()
    {
        if (Buckets == 0) yield break;
        using var stream = new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        using var r = new BinaryReader(stream);
        while (stream.Position < stream.Length)
        {
            var bucket = r.ReadInt64();
            var pending = new PendingBucket(slotCount);
            var clients = r.Read7BitEncodedInt();
            for (var i = 0; i < clients; i++)
            {
                var ip = r.ReadString();
                ReadSlots(r, pending.Client(ip, slotCount));
            }
            ReadSlots(r, pending.Host);
            yield return new(bucket, pending);
        }
    }

    /// <summary>Everything in the file is in the database now: it is never read again (deleted, or
    /// overwritten by the next spill when it cannot be deleted).</summary>
    public void Committed()
    {
        if (Buckets == 0) return;
        Buckets = 0;
        Bytes = 0;
        try
        {
            File.Delete(Path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private static void WriteSlots(BinaryWriter w, Traffic[] slots)
    {
        foreach (var t in slots)
        {
            w.Write7BitEncodedInt64((long)t.Bytes);
            w.Write7BitEncodedInt64((long)t.Packets);
        }
    }

    private static void ReadSlots(BinaryReader r, Traffic[] into)
    {
        for (var s = 0; s < into.Length; s++)
            into[s] += new Traffic((ulong)r.Read7BitEncodedInt64(), (ulong)r.Read7BitEncodedInt64());
    }
}
