using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;

namespace SiaExporter.Web;

/// <summary>
/// WEB_CONFIG_FILE: the Prometheus exporter-toolkit web configuration (the same YAML that
/// node_exporter's --web.config.file reads), already parsed, validated and with its
/// certificates loaded. Load it once at start-up with <see cref="Load"/>; a bad file throws
/// <see cref="WebConfigException"/> naming the file, the line and the field.
/// </summary>
public sealed class WebConfig
{
    internal WebConfig(string path, TlsServerConfig? tls, HttpServerConfig http,
        IReadOnlyDictionary<string, string> users, IReadOnlyList<string> warnings)
    {
        Path = path;
        Tls = tls;
        Http = http;
        BasicAuthUsers = users;
        Warnings = warnings;
    }

    /// <summary>The file it was read from, as given.</summary>
    public string Path { get; }

    /// <summary>tls_server_config, or null when the file enables no TLS (plain HTTP).</summary>
    public TlsServerConfig? Tls { get; }

    /// <summary>http_server_config (headers, http2).</summary>
    public HttpServerConfig Http { get; }

    /// <summary>basic_auth_users: user name → bcrypt hash. Empty: no password asked.</summary>
    public IReadOnlyDictionary<string, string> BasicAuthUsers { get; }

    /// <summary>Accepted-but-ignored settings and risky combinations, one line each, for the log.</summary>
    public IReadOnlyList<string> Warnings { get; }

    public bool BasicAuthEnabled => BasicAuthUsers.Count > 0;

    /// <summary>Reads and validates <paramref name="path"/>; throws <see cref="WebConfigException"/>.</summary>
    public static WebConfig Load(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new WebConfigException(path, 0, 0, null, $"cannot read the file: {e.Message}", e);
        }
        return Parse(text, path);
    }

    /// <summary>Parses YAML text; relative file names in it are taken from the folder of <paramref name="path"/>.</summary>
    public static WebConfig Parse(string yaml, string path) => WebConfigParser.Parse(yaml, path);
}

/// <summary>tls_server_config, checked: the server certificate is loaded and matches its key.</summary>
public sealed class TlsServerConfig
{
    internal TlsServerConfig(X509Certificate2 certificate, X509Certificate2Collection chain, ClientAuthType clientAuth,
        X509Certificate2Collection clientCas, SslProtocols protocols, string? certFile, string? keyFile, string? clientCaFile)
    {
        ServerCertificate = certificate;
        ServerCertificateChain = chain;
        ClientAuthType = clientAuth;
        ClientCertificateAuthorities = clientCas;
        Protocols = protocols;
        CertFile = certFile;
        KeyFile = keyFile;
        ClientCaFile = clientCaFile;
    }

    /// <summary>The leaf certificate with its private key (cert_file + key_file, or cert + key inline).</summary>
    public X509Certificate2 ServerCertificate { get; }

    /// <summary>Intermediate certificates that followed the leaf in cert_file; sent in the handshake.</summary>
    public X509Certificate2Collection ServerCertificateChain { get; }

    public ClientAuthType ClientAuthType { get; }

    /// <summary>client_ca_file (or client_ca inline): the only roots a client certificate is verified against.</summary>
    public X509Certificate2Collection ClientCertificateAuthorities { get; }

    /// <summary>min_version..max_version as SslProtocols (TLS 1.2 and/or 1.3).</summary>
    public SslProtocols Protocols { get; }

    /// <summary>Absolute paths, or null when given inline.</summary>
    public string? CertFile { get; }

    public string? KeyFile { get; }

    public string? ClientCaFile { get; }

    /// <summary>Whether a client certificate, when one is presented or required, is checked against <see cref="ClientCertificateAuthorities"/>.</summary>
    public bool VerifiesClientCertificate =>
        ClientAuthType is ClientAuthType.VerifyClientCertIfGiven or ClientAuthType.RequireAndVerifyClientCert;

    /// <summary>Whether a connection without a client certificate is refused.</summary>
    public bool RequiresClientCertificate =>
        ClientAuthType is ClientAuthType.RequireAnyClientCert or ClientAuthType.RequireAndVerifyClientCert;
}

/// <summary>client_auth_type, with Go's crypto/tls meanings.</summary>
public enum ClientAuthType
{
    NoClientCert,
    /// <summary>Ask for a certificate; accept any, or none.</summary>
    RequestClientCert,
    /// <summary>Require a certificate; accept any (not verified). "RequireClientCert" is an alias.</summary>
    RequireAnyClientCert,
    /// <summary>Accept none; a certificate that is presented must chain to client_ca_file.</summary>
    VerifyClientCertIfGiven,
    /// <summary>Require a certificate that chains to client_ca_file.</summary>
    RequireAndVerifyClientCert,
}

/// <summary>http_server_config.</summary>
public sealed class HttpServerConfig
{
    internal HttpServerConfig(bool http2, IReadOnlyDictionary<string, string> headers)
    {
        Http2 = http2;
        Headers = headers;
    }

    /// <summary>http2 (default true): HTTP/2 offered over TLS; false serves HTTP/1.1 only.</summary>
    public bool Http2 { get; }

    /// <summary>headers: added to every response, 401s included.</summary>
    public IReadOnlyDictionary<string, string> Headers { get; }
}

/// <summary>
/// WEB_CONFIG_FILE is wrong. <see cref="Exception.Message"/> is one line for the operator:
/// "FILE:LINE:COLUMN: FIELD: PROBLEM" (LINE and COLUMN left out when not known).
/// </summary>
public sealed class WebConfigException : Exception
{
    public WebConfigException(string file, int line, int column, string? field, string problem, Exception? inner = null)
        : base(Format(file, line, column, field, problem), inner)
    {
        File = file;
        Line = line;
        Column = column;
        Field = field;
        Problem = problem;
    }

    public string File { get; }

    /// <summary>1-based; 0 when the problem is not on one line.</summary>
    public int Line { get; }

    public int Column { get; }

    /// <summary>Dotted path of the field, e.g. "tls_server_config.cert_file"; null for the whole file.</summary>
    public string? Field { get; }

    public string Problem { get; }

    /// <summary>The same problem as the daemon's "error: … — …" line.</summary>
    public OperatorException ToOperatorException() =>
        new(Message, "fix WEB_CONFIG_FILE (the Prometheus exporter-toolkit web config format), or unset it to serve plain HTTP", this);

    private static string Format(string file, int line, int column, string? field, string problem)
    {
        var where = line > 0 ? (column > 0 ? $"{file}:{line}:{column}" : $"{file}:{line}") : file;
        return field is null ? $"{where}: {problem}" : $"{where}: {field}: {problem}";
    }
}
