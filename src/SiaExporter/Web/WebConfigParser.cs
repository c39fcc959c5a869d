using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace SiaExporter.Web;

/// <summary>
/// Strict reader of the exporter-toolkit web config: every key is known or an error, every
/// value has the right shape, every file it names is read and checked here, at start-up.
/// Walks YamlDotNet's node tree (not the deserializer) so that each error carries its line.
/// </summary>
internal static partial class WebConfigParser
{
    // The headers exporter-toolkit lets an operator set, with the values it allows (null: any).
    private static readonly Dictionary<string, string[]?> AllowedHeaders = new(StringComparer.Ordinal)
    {
        ["Strict-Transport-Security"] = null,
        ["X-Content-Type-Options"] = ["nosniff"],
        ["X-Frame-Options"] = ["deny", "sameorigin"],
        ["X-XSS-Protection"] = null,
        ["Content-Security-Policy"] = null,
    };

    [GeneratedRegex(@"^\$2[abxy]?\$(?<cost>[0-9]{2})\$[./A-Za-z0-9]{53}$", RegexOptions.CultureInvariant)]
    private static partial Regex BcryptHash();

    public static WebConfig Parse(string yaml, string path)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(yaml));
        }
        catch (YamlException e)
        {
            throw new WebConfigException(path, (int)e.Start.Line, (int)e.Start.Column, null,
                $"not valid YAML: {e.Message}{(e.InnerException is null ? "" : " (" + e.InnerException.Message + ")")}", e);
        }
        if (stream.Documents.Count > 1)
            throw Error(path, stream.Documents[1].RootNode, null, "more than one YAML document; the web config is one mapping");

        var warnings = new List<string>();
        var root = stream.Documents.Count == 0 ? null : stream.Documents[0].RootNode;
        var top = Mapping(path, root, null);
        var baseDir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path)) ?? ".";

        TlsServerConfig? tls = null;
        var http = new HttpServerConfig(true, new Dictionary<string, string>());
        var users = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in top)
        {
            switch (key.Value)
            {
                case "tls_server_config":
                    tls = ParseTls(path, baseDir, value, warnings);
                    break;
                case "http_server_config":
                    http = ParseHttp(path, value);
                    break;
                case "basic_auth_users":
                    users = ParseUsers(path, value);
                    break;
                case "rate_limit":
                    throw Error(path, key, "rate_limit", "not supported by this exporter; remove it");
                default:
                    throw Error(path, key, key.Value, "unknown field (expected tls_server_config, http_server_config or basic_auth_users)");
            }
        }

        if (users.Count > 0 && tls is null)
            warnings.Add($"{path}: basic_auth_users without tls_server_config: passwords cross the network in clear text");
        if (users.Count == 0 && tls is null)
            warnings.Add($"{path}: neither tls_server_config nor basic_auth_users: /metrics is served in plain HTTP to anyone");
        return new WebConfig(path, tls, http, users, warnings);
    }

    private static TlsServerConfig? ParseTls(string path, string baseDir, YamlNode? node, List<string> warnings)
    {
        const string section = "tls_server_config";
        FieldValue? certFile = null, keyFile = null, certInline = null, keyInline = null, caFile = null, caInline = null;
        FieldValue? clientAuthText = null;
        var min = SslProtocols.Tls12;
        var max = SslProtocols.Tls13;
        YamlNode? minNode = null;
        foreach (var (key, value) in Mapping(path, node, section))
        {
            var field = $"{section}.{key.Value}";
            switch (key.Value)
            {
                case "cert_file": certFile = Scalar(path, value, field); break;
                case "key_file": keyFile = Scalar(path, value, field); break;
                case "cert": certInline = Scalar(path, value, field); break;
                case "key": keyInline = Scalar(path, value, field); break;
                case "client_ca_file": caFile = Scalar(path, value, field); break;
                case "client_ca": caInline = Scalar(path, value, field); break;
                case "client_auth_type": clientAuthText = Scalar(path, value, field); break;
                case "min_version":
                    min = Version(path, value, field);
                    minNode = value;
                    break;
                case "max_version": max = Version(path, value, field); break;
                case "cipher_suites":
                case "curve_preferences":
                    StringList(path, value, field);
                    warnings.Add($"{path}:{value.Start.Line}: {field} is ignored: .NET and OpenSSL choose them (TLS 1.2 and 1.3 with modern suites only)");
                    break;
                case "prefer_server_cipher_suites":
                    Bool(path, value, field); // Go ignores it too since 1.18
                    break;
                case "client_allowed_sans":
                    throw Error(path, key, field, "not supported by this exporter; use a dedicated client CA in client_ca_file instead");
                default:
                    throw Error(path, key, field, "unknown field (expected cert_file, key_file, client_auth_type, client_ca_file, min_version, max_version, cipher_suites)");
            }
        }

        // Same rule as exporter-toolkit: any of these set means TLS is wanted.
        var enabled = Set(certFile) || Set(keyFile) || Set(certInline) || Set(keyInline) || Set(caFile) || Set(caInline) || Set(clientAuthText);
        if (!enabled)
        {
            if (node is YamlMappingNode { Children.Count: > 0 })
                warnings.Add($"{path}: {section} names no certificate, key or client CA: TLS is off, plain HTTP is served");
            return null;
        }

        if (Set(certFile) && Set(certInline)) throw Error(path, certInline!.Node, $"{section}.cert", "give cert_file or cert, not both");
        if (Set(keyFile) && Set(keyInline)) throw Error(path, keyInline!.Node, $"{section}.key", "give key_file or key, not both");
        if (Set(caFile) && Set(caInline)) throw Error(path, caInline!.Node, $"{section}.client_ca", "give client_ca_file or client_ca, not both");
        if (!Set(certFile) && !Set(certInline)) throw Error(path, node, $"{section}.cert_file", "missing: TLS needs cert_file (PEM certificate) and key_file");
        if (!Set(keyFile) && !Set(keyInline)) throw Error(path, node, $"{section}.key_file", "missing: TLS needs key_file (PEM private key) and cert_file");
        if (max < min) throw Error(path, minNode, $"{section}.min_version", "is above max_version");

        var clientAuth = ClientAuthType.NoClientCert;
        if (Set(clientAuthText))
        {
            clientAuth = clientAuthText!.Text switch
            {
                "NoClientCert" => ClientAuthType.NoClientCert,
                "RequestClientCert" => ClientAuthType.RequestClientCert,
                "RequireAnyClientCert" or "RequireClientCert" => ClientAuthType.RequireAnyClientCert,
                "VerifyClientCertIfGiven" => ClientAuthType.VerifyClientCertIfGiven,
                "RequireAndVerifyClientCert" => ClientAuthType.RequireAndVerifyClientCert,
                _ => throw Error(path, clientAuthText.Node, $"{section}.client_auth_type",
                    $"'{clientAuthText.Text}' is not one of NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"),
            };
        }

        var (certPem, certPath) = ReadPem(path, baseDir, certFile, certInline, section, "cert_file");
        var (keyPem, keyPath) = ReadPem(path, baseDir, keyFile, keyInline, section, "key_file");
        var certNode = (Set(certFile) ? certFile : certInline)!;
        var keyNode = (Set(keyFile) ? keyFile : keyInline)!;
        var certField = $"{section}.{(Set(certFile) ? "cert_file" : "cert")}";
        var keyField = $"{section}.{(Set(keyFile) ? "key_file" : "key")}";

        var all = new X509Certificate2Collection();
        try
        {
            all.ImportFromPem(certPem);
        }
        catch (CryptographicException e)
        {
            throw Error(path, certNode.Node, certField, $"{certPath ?? "inline cert"}: not a PEM certificate: {e.Message}", e);
        }
        if (all.Count == 0)
            throw Error(path, certNode.Node, certField, $"{certPath ?? "inline cert"}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it");

        X509Certificate2 leaf;
        try
        {
            leaf = X509Certificate2.CreateFromPem(certPem, keyPem);
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            throw Error(path, keyNode.Node, keyField, $"{keyPath ?? "inline key"}: {DescribeKeyProblem(keyPem)}", e);
        }
        var chain = new X509Certificate2Collection();
        for (var i = 1; i < all.Count; i++) chain.Add(all[i]);
        var now = DateTime.Now;
        if (leaf.NotAfter < now)
            warnings.Add($"{path}: {certField}: the certificate expired on {leaf.NotAfter:yyyy-MM-dd HH:mm}; clients will refuse it");
        else if (leaf.NotBefore > now)
            warnings.Add($"{path}: {certField}: the certificate is not valid before {leaf.NotBefore:yyyy-MM-dd HH:mm}");

        var cas = new X509Certificate2Collection();
        string? caPath = null;
        if (Set(caFile) || Set(caInline))
        {
            var caNode = (Set(caFile) ? caFile : caInline)!;
            var caField = $"{section}.{(Set(caFile) ? "client_ca_file" : "client_ca")}";
            if (clientAuth == ClientAuthType.NoClientCert)
                throw Error(path, caNode.Node, caField, "a client CA is given but client_auth_type is NoClientCert; set client_auth_type: RequireAndVerifyClientCert");
            (var caPem, caPath) = ReadPem(path, baseDir, caFile, caInline, section, "client_ca_file");
            try
            {
                cas.ImportFromPem(caPem);
            }
            catch (CryptographicException e)
            {
                throw Error(path, caNode.Node, caField, $"{caPath ?? "inline client_ca"}: not a PEM certificate: {e.Message}", e);
            }
            if (cas.Count == 0)
                throw Error(path, caNode.Node, caField, $"{caPath ?? "inline client_ca"}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it");
        }
        else if (clientAuth is ClientAuthType.VerifyClientCertIfGiven or ClientAuthType.RequireAndVerifyClientCert)
        {
            // Go would fall back to the system roots: any publicly issued client certificate would pass.
            throw Error(path, clientAuthText!.Node, $"{section}.client_ca_file",
                $"missing: client_auth_type {clientAuthText.Text} needs client_ca_file, the CA that issued your scrapers' certificates");
        }

        var protocols = SslProtocols.None;
        if (min <= SslProtocols.Tls12 && max >= SslProtocols.Tls12) protocols |= SslProtocols.Tls12;
        if (max >= SslProtocols.Tls13) protocols |= SslProtocols.Tls13;
        return new TlsServerConfig(leaf, chain, clientAuth, cas, protocols, certPath, keyPath, caPath);
    }

    private static string DescribeKeyProblem(string keyPem)
    {
        if (keyPem.Contains("ENCRYPTED PRIVATE KEY", StringComparison.Ordinal))
            return "an encrypted private key; give it unencrypted (readable by the collector user only)";
        if (!keyPem.Contains("PRIVATE KEY-----", StringComparison.Ordinal))
            return "no PEM private key (-----BEGIN ... PRIVATE KEY-----) in it";
        foreach (var algorithm in new Func<AsymmetricAlgorithm>[] { RSA.Create, ECDsa.Create })
        {
            using var key = algorithm();
            try
            {
                key.ImportFromPem(keyPem);
                return "the private key does not match the certificate in cert_file";
            }
            catch (Exception e) when (e is CryptographicException or ArgumentException)
            {
            }
        }
        return "the private key could not be read (RSA or ECDSA, PKCS#8 or traditional PEM expected)";
    }

    private static (string Pem, string? File) ReadPem(string path, string baseDir, FieldValue? file, FieldValue? inline,
        string section, string fileField)
    {
        if (Set(file))
        {
            var full = System.IO.Path.GetFullPath(System.IO.Path.Combine(baseDir, file!.Text));
            try
            {
                return (File.ReadAllText(full), full);
            }
            catch (FileNotFoundException e)
            {
                throw Error(path, file.Node, $"{section}.{fileField}", $"{full}: no such file", e);
            }
            catch (DirectoryNotFoundException e)
            {
                throw Error(path, file.Node, $"{section}.{fileField}", $"{full}: no such file", e);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw Error(path, file.Node, $"{section}.{fileField}", $"{full}: cannot read: {e.Message}", e);
            }
        }
        return (inline!.Text, null);
    }

    private static HttpServerConfig ParseHttp(string path, YamlNode? node)
    {
        const string section = "http_server_config";
        var http2 = true;
        var headers = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in Mapping(path, node, section))
        {
            var field = $"{section}.{key.Value}";
            switch (key.Value)
            {
                case "http2":
                    http2 = Bool(path, value, field);
                    break;
                case "headers":
                    foreach (var (name, headerValue) in Mapping(path, value, field))
                    {
                        var headerField = $"{field}.{name.Value}";
                        if (!AllowedHeaders.TryGetValue(name.Value!, out var allowed))
                            throw Error(path, name, headerField, $"this header can not be configured (allowed: {string.Join(", ", AllowedHeaders.Keys)})");
                        var text = Scalar(path, headerValue, headerField)?.Text ?? "";
                        if (allowed is not null && !allowed.Contains(text, StringComparer.Ordinal))
                            throw Error(path, headerValue, headerField, $"'{text}' is not one of {string.Join(", ", allowed)}");
                        if (text.Any(c => c < 0x20 && c != '\t' || c == 0x7f))
                            throw Error(path, headerValue, headerField, "control characters are not allowed in a header value");
                        headers[name.Value!] = text;
                    }
                    break;
                default:
                    throw Error(path, key, field, "unknown field (expected headers or http2)");
            }
        }
        return new HttpServerConfig(http2, headers);
    }

    private static Dictionary<string, string> ParseUsers(string path, YamlNode? node)
    {
        const string section = "basic_auth_users";
        var users = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in Mapping(path, node, section))
        {
            var field = $"{section}.{key.Value}";
            if (string.IsNullOrEmpty(key.Value))
                throw Error(path, key, section, "a user name is empty");
            if (key.Value.Contains(':'))
                throw Error(path, key, field, "a user name cannot contain ':' (HTTP basic auth splits on it)");
            var hash = Scalar(path, value, field)?.Text;
            if (string.IsNullOrEmpty(hash))
                throw Error(path, value ?? key, field, "no password hash; give a bcrypt hash (htpasswd -nBC 10 USER)");
            var match = BcryptHash().Match(hash);
            if (!match.Success)
                throw Error(path, value, field, "not a bcrypt hash ($2y$10$ followed by 53 characters); make one with `htpasswd -nBC 10 USER`; plain passwords are not accepted");
            var cost = int.Parse(match.Groups["cost"].Value, System.Globalization.CultureInfo.InvariantCulture);
            if (cost is < 4 or > 31)
                throw Error(path, value, field, $"bcrypt cost {cost} is outside 4..31");
            users[key.Value] = hash;
        }
        return users;
    }

    private static SslProtocols Version(string path, YamlNode value, string field)
    {
        var text = Scalar(path, value, field)?.Text;
        return text switch
        {
            "TLS12" => SslProtocols.Tls12,
            "TLS13" => SslProtocols.Tls13,
            "TLS10" or "TLS11" => throw Error(path, value, field, $"{text} is not supported (insecure); use TLS12 or TLS13"),
            _ => throw Error(path, value, field, $"'{text}' is not a TLS version (TLS12 or TLS13)"),
        };
    }

    private static bool Bool(string path, YamlNode value, string field)
    {
        var text = Scalar(path, value, field)?.Text;
        return text?.ToLowerInvariant() switch
        {
            "true" or "yes" or "on" => true,
            "false" or "no" or "off" => false,
            _ => throw Error(path, value, field, $"'{text}' is not true or false"),
        };
    }

    private static List<string> StringList(string path, YamlNode value, string field)
    {
        if (IsNull(value)) return [];
        if (value is not YamlSequenceNode seq)
            throw Error(path, value, field, "expected a list");
        return seq.Children.Select(c => Scalar(path, c, field)?.Text ?? "").ToList();
    }

    /// <summary>The entries of a mapping node (null or an empty document: none), keys checked to be unique scalars.</summary>
    private static List<(YamlScalarNode Key, YamlNode Value)> Mapping(string path, YamlNode? node, string? field)
    {
        if (node is null || IsNull(node)) return [];
        if (node is not YamlMappingNode map)
            throw Error(path, node, field, field is null ? "expected a mapping (tls_server_config:, basic_auth_users: ...)" : "expected a mapping (key: value lines)");
        var entries = new List<(YamlScalarNode, YamlNode)>();
        foreach (var (k, v) in map.Children)
        {
            if (k is not YamlScalarNode key || key.Value is null)
                throw Error(path, k, field, "a key must be a plain name");
            entries.Add((key, v));
        }
        return entries;
    }

    private sealed record FieldValue(string Text, YamlNode Node);

    private static FieldValue? Scalar(string path, YamlNode? value, string field)
    {
        if (value is null || IsNull(value)) return null;
        if (value is not YamlScalarNode scalar)
            throw Error(path, value, field, "expected a single value, not a list or mapping");
        return new FieldValue(scalar.Value ?? "", scalar);
    }

    private static bool Set(FieldValue? v) => v is not null && v.Text.Length > 0;

    private static bool IsNull(YamlNode node) =>
        node is YamlScalarNode { Style: ScalarStyle.Plain } s && (s.Value is null or "" or "~" or "null" or "Null" or "NULL");

    private static WebConfigException Error(string path, YamlNode? node, string? field, string problem, Exception? inner = null) =>
        new(path, node is null ? 0 : (int)node.Start.Line, node is null ? 0 : (int)node.Start.Column, field, problem, inner);
}
