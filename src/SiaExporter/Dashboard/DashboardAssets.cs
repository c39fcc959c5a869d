using System.Collections.Frozen;
using System.Reflection;
using System.Security.Cryptography;

namespace SiaExporter.Dashboard;

/// <summary>One file of the dashboard, as embedded in the binary.</summary>
public sealed record DashboardAsset(string Name, byte[] Content, string ContentType, string ETag);

/// <summary>
/// The dashboard's files (web/dist/, built by <c>make web</c>), embedded in the binary as
/// resources <c>dashboard/NAME</c> and read once: no file system, no node at run time.
/// </summary>
public static class DashboardAssets
{
    private const string Prefix = "dashboard/";

    public static FrozenDictionary<string, DashboardAsset> All { get; } = Load(typeof(DashboardAssets).Assembly);

    public static FrozenDictionary<string, DashboardAsset> Load(Assembly assembly)
    {
        ArgumentNullException.ThrowIfNull(assembly);
        var assets = new Dictionary<string, DashboardAsset>(StringComparer.Ordinal);
        foreach (var resource in assembly.GetManifestResourceNames())
        {
            if (!resource.StartsWith(Prefix, StringComparison.Ordinal)) continue;
            using var stream = assembly.GetManifestResourceStream(resource)!;
            using var memory = new MemoryStream();
            stream.CopyTo(memory);
            var content = memory.ToArray();
            var name = resource[Prefix.Length..];
            var etag = "\"" + Convert.ToHexStringLower(SHA256.HashData(content))[..16] + "\"";
            assets[name] = new DashboardAsset(name, content, ContentTypeOf(name), etag);
        }
        return assets.ToFrozenDictionary(StringComparer.Ordinal);
    }

    private static string ContentTypeOf(string name) => Path.GetExtension(name) switch
    {
        ".html" => "text/html; charset=utf-8",
        ".js" => "text/javascript; charset=utf-8",
        ".css" => "text/css; charset=utf-8",
        ".svg" => "image/svg+xml",
        _ => "application/octet-stream",
    };
}
