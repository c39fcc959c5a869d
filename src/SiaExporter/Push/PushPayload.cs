using System.Text.Json;
using SiaExporter.Storage;

namespace SiaExporter.Push;

/// <summary>
/// The JSON body of one bucket:
/// <code>
/// {"host": "h1", "bucket": 1700000100, "bucket_end": 1700000400,
///  "clients": [{"client": "203.0.113.7", "port": 9984, "proto": "udp",
///               "up_bytes": 1, "down_bytes": 2, "up_packets": 3, "down_packets": 4}, …],
///  "totals":  [{"port": 9984, "proto": "udp", "up_bytes": …, "down_bytes": …, "up_packets": …, "down_packets": …}, …]}
/// </code>
/// bucket/bucket_end: Unix seconds UTC, [start, end). Clients come from traffic_detail (client
/// "overflow" = traffic of clients that found the kernel map full), totals from traffic_host (the
/// kernel's exact host totals per class). Written with Utf8JsonWriter: no reflection, names fixed here.
/// </summary>
public static class PushPayload
{
    public static byte[] Serialize(string host, long bucket, IReadOnlyList<ClassRow> clients, IReadOnlyList<ClassRow> totals, long revision = 0)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256 + 160 * (clients.Count + totals.Count));
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("host", host);
            w.WriteNumber("bucket", bucket);
            w.WriteNumber("bucket_end", bucket + Buckets.Seconds);
            if (revision > 0) w.WriteNumber("revision", revision); // the whole bucket again: replaces revision N-1
            w.WriteStartArray("clients");
            foreach (var row in clients) WriteRow(w, row);
            w.WriteEndArray();
            w.WriteStartArray("totals");
            foreach (var row in totals) WriteRow(w, row);
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    private static void WriteRow(Utf8JsonWriter w, in ClassRow row)
    {
        w.WriteStartObject();
        if (row.Client is not null) w.WriteString("client", row.Client);
        w.WriteNumber("port", row.Port);
        w.WriteString("proto", row.Proto);
        w.WriteNumber("up_bytes", row.UpBytes);
        w.WriteNumber("down_bytes", row.DownBytes);
        w.WriteNumber("up_packets", row.UpPackets);
        w.WriteNumber("down_packets", row.DownPackets);
        w.WriteEndObject();
    }
}
