using System.Security.Authentication;
using SiaExporter.Web;
using Xunit;

namespace SiaExporter.Tests.Web;

public sealed class WebConfigTests : IDisposable
{
    private readonly TestPki _pki = new();
    private static readonly string Hash = BCrypt.Net.BCrypt.HashPassword("secret", 4);

    public void Dispose() => _pki.Dispose();

    private WebConfigException Bad(string yaml)
    {
        var path = _pki.Write("web.yml", yaml);
        var e = Assert.Throws<WebConfigException>(() => WebConfig.Load(path));
        Assert.StartsWith(path, e.Message, StringComparison.Ordinal);
        return e;
    }

    [Fact]
    public void Full_config_loads_with_relative_paths_from_the_config_folder()
    {
        var path = _pki.Write("web.yml", $"""
            # comment
            tls_server_config:
              cert_file: server.crt
              key_file: server.key
              client_auth_type: RequireAndVerifyClientCert
              client_ca_file: ca.pem
              min_version: TLS13
              cipher_suites: [TLS_AES_128_GCM_SHA256]
            http_server_config:
              http2: false
              headers:
                X-Frame-Options: deny
                Strict-Transport-Security: max-age=31536000
            basic_auth_users:
              prometheus: {Hash}
              alice: "$2y${Hash[4..]}"
            """);
        var config = WebConfig.Load(path);
        Assert.NotNull(config.Tls);
        Assert.Equal(ClientAuthType.RequireAndVerifyClientCert, config.Tls.ClientAuthType);
        Assert.Equal(SslProtocols.Tls13, config.Tls.Protocols);
        Assert.Equal(_pki.ServerCertFile, config.Tls.CertFile);
        Assert.True(config.Tls.ServerCertificate.HasPrivateKey);
        Assert.Single(config.Tls.ClientCertificateAuthorities);
        Assert.False(config.Http.Http2);
        Assert.Equal("deny", config.Http.Headers["X-Frame-Options"]);
        Assert.Equal(2, config.BasicAuthUsers.Count);
        Assert.Contains(config.Warnings, w => w.Contains("cipher_suites is ignored", StringComparison.Ordinal));
    }

    [Fact]
    public void Default_versions_are_tls12_and_tls13_and_basic_auth_alone_warns_about_clear_text()
    {
        var tls = WebConfig.Load(_pki.Write("a.yml", $"tls_server_config:\n  cert_file: {_pki.ServerCertFile}\n  key_file: {_pki.ServerKeyFile}\n"));
        Assert.Equal(SslProtocols.Tls12 | SslProtocols.Tls13, tls.Tls!.Protocols);
        Assert.False(tls.BasicAuthEnabled);

        var auth = WebConfig.Load(_pki.Write("b.yml", $"basic_auth_users:\n  u: {Hash}\n"));
        Assert.Null(auth.Tls);
        Assert.Contains(auth.Warnings, w => w.Contains("clear text", StringComparison.Ordinal));

        var empty = WebConfig.Load(_pki.Write("c.yml", "# nothing\n"));
        Assert.Null(empty.Tls);
        Assert.False(empty.BasicAuthEnabled);
    }

    [Fact]
    public void Bad_yaml_names_the_line()
    {
        var e = Bad("basic_auth_users:\n  u: x\ntls_server_config: [a,\n  b: c\n");
        Assert.True(e.Line >= 3, e.Message);
        Assert.Contains($":{e.Line}:", e.Message, StringComparison.Ordinal);
        Assert.Contains("not valid YAML", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Duplicate_key_names_the_line()
    {
        var e = Bad($"basic_auth_users:\n  u: {Hash}\n  u: {Hash}\n");
        Assert.Equal(3, e.Line);
    }

    [Fact]
    public void Unknown_field_is_named_with_its_line()
    {
        var e = Bad($"tls_server_config:\n  cert_file: {_pki.ServerCertFile}\n  key_file: {_pki.ServerKeyFile}\n  client_auth: RequireAndVerifyClientCert\n");
        Assert.Equal(4, e.Line);
        Assert.Equal("tls_server_config.client_auth", e.Field);
        Assert.Contains(":4:3: tls_server_config.client_auth: unknown field", e.Message, StringComparison.Ordinal);

        var top = Bad("basic_auth_user:\n  u: x\n");
        Assert.Equal(1, top.Line);
        Assert.Equal("basic_auth_user", top.Field);
    }

    [Theory]
    [InlineData("secret")]
    [InlineData("$apr1$abc$0123456789012345678901")]
    [InlineData("{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=")]
    [InlineData("$2y$10$tooshort")]
    public void A_hash_that_is_not_bcrypt_is_refused(string hash)
    {
        var e = Bad($"basic_auth_users:\n  prometheus: '{hash}'\n");
        Assert.Equal(2, e.Line);
        Assert.Equal("basic_auth_users.prometheus", e.Field);
        Assert.Contains("not a bcrypt hash", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_cert_file_is_named()
    {
        var missing = Path.Combine(_pki.Dir, "nope.crt");
        var e = Bad($"tls_server_config:\n  cert_file: nope.crt\n  key_file: {_pki.ServerKeyFile}\n");
        Assert.Equal(2, e.Line);
        Assert.Equal("tls_server_config.cert_file", e.Field);
        Assert.Contains($"{missing}: no such file", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Key_that_does_not_match_the_cert_is_refused()
    {
        var e = Bad($"tls_server_config:\n  cert_file: {_pki.ServerCertFile}\n  key_file: {_pki.OtherKeyFile}\n");
        Assert.Equal("tls_server_config.key_file", e.Field);
        Assert.Equal(3, e.Line);
        Assert.Contains("does not match", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Cert_file_without_a_certificate_and_key_without_cert_are_refused()
    {
        var e = Bad($"tls_server_config:\n  cert_file: {_pki.ServerKeyFile}\n  key_file: {_pki.ServerKeyFile}\n");
        Assert.Equal("tls_server_config.cert_file", e.Field);
        var noCert = Bad($"tls_server_config:\n  key_file: {_pki.ServerKeyFile}\n");
        Assert.Equal("tls_server_config.cert_file", noCert.Field);
        Assert.Contains("missing", noCert.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("  client_auth_type: RequireAndVerifyClientCert\n", "tls_server_config.client_ca_file", "needs client_ca_file")]
    [InlineData("  client_auth_type: VerifyClientCert\n", "tls_server_config.client_auth_type", "is not one of")]
    [InlineData("  client_ca_file: ca.pem\n", "tls_server_config.client_ca_file", "NoClientCert")]
    [InlineData("  min_version: TLS11\n", "tls_server_config.min_version", "not supported")]
    [InlineData("  min_version: TLS14\n", "tls_server_config.min_version", "not a TLS version")]
    [InlineData("  min_version: TLS13\n  max_version: TLS12\n", "tls_server_config.min_version", "above max_version")]
    [InlineData("  client_allowed_sans: [a]\n", "tls_server_config.client_allowed_sans", "not supported")]
    [InlineData("  cert_file: [a, b]\n", "tls_server_config.cert_file", "single value")]
    public void Tls_mistakes_are_named(string extra, string field, string problem)
    {
        var e = Bad($"tls_server_config:\n  key_file: server.key\n{(extra.Contains("cert_file", StringComparison.Ordinal) ? "" : "  cert_file: server.crt\n")}{extra}");
        Assert.Equal(field, e.Field);
        Assert.Contains(problem, e.Message, StringComparison.Ordinal);
        Assert.True(e.Line > 0, e.Message);
    }

    [Theory]
    [InlineData("    X-Powered-By: me\n", "http_server_config.headers.X-Powered-By")]
    [InlineData("    X-Frame-Options: allow\n", "http_server_config.headers.X-Frame-Options")]
    public void Headers_are_limited_to_exporter_toolkit_ones(string header, string field)
    {
        var e = Bad($"http_server_config:\n  headers:\n{header}");
        Assert.Equal(field, e.Field);
        Assert.Equal(3, e.Line);
    }

    [Fact]
    public void Http2_must_be_a_boolean_and_sections_must_be_mappings()
    {
        Assert.Equal("http_server_config.http2", Bad("http_server_config:\n  http2: maybe\n").Field);
        Assert.Equal("basic_auth_users", Bad("basic_auth_users: [a, b]\n").Field);
        Assert.Null(Bad("- a\n- b\n").Field);
    }

    [Fact]
    public void Unreadable_config_file_is_named()
    {
        var path = Path.Combine(_pki.Dir, "absent.yml");
        var e = Assert.Throws<WebConfigException>(() => WebConfig.Load(path));
        Assert.StartsWith(path, e.Message, StringComparison.Ordinal);
        Assert.Contains("OperatorException", e.ToOperatorException().GetType().Name, StringComparison.Ordinal);
    }
}
