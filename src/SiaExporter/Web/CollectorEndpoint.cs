using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using SiaExporter.Hosting;

namespace SiaExporter.Web;

/// <summary>
/// Where and how /metrics is served: LISTEN_ADDRESS (one or more addresses) or the sockets systemd
/// passed (WEB_SYSTEMD_SOCKET), and WEB_CONFIG_FILE's TLS, client certificates, basic auth and
/// headers. One call on the builder does all of it:
/// <code>
/// var web = options.WebConfigFile is null ? null : WebConfig.Load(options.WebConfigFile);
/// builder.ConfigureCollectorEndpoint(Listeners.From(options.Web), web);
/// </code>
/// </summary>
public static class CollectorEndpoint
{
    private static readonly Oid ClientAuthentication = new("1.3.6.1.5.5.7.3.2", "Client Authentication");

    /// <summary>One address, no socket activation (the tests' servers).</summary>
    public static WebApplicationBuilder ConfigureCollectorEndpoint(this WebApplicationBuilder builder, ListenAddress listen, WebConfig? web) =>
        builder.ConfigureCollectorEndpoint(new Listeners([listen], SystemdSockets: 0), web);

    /// <summary>
    /// Makes Kestrel listen on <paramref name="listeners"/> only (any URLs or Kestrel:Endpoints from
    /// configuration or ASPNETCORE_URLS are dropped), in HTTPS only when <paramref name="web"/> has
    /// tls_server_config, and puts the headers + basic-auth middleware first in the pipeline of
    /// every path (through an <see cref="IStartupFilter"/>, so it runs before anything the app maps).
    /// Call it once; the WebConfig's warnings are logged when the app starts.
    /// </summary>
    public static WebApplicationBuilder ConfigureCollectorEndpoint(this WebApplicationBuilder builder, Listeners listeners, WebConfig? web)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(listeners);
        builder.WebHost.PreferHostingUrls(false);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            // Replace the loader bound to the "Kestrel" configuration section with an empty one:
            // an endpoint from appsettings or Kestrel__Endpoints__* must not open a plain port beside ours.
            kestrel.Configure(new ConfigurationBuilder().Build(), reloadOnChange: false);
            kestrel.AddServerHeader = false;
            void Configure(ListenOptions options)
            {
                if (web?.Tls is not { } tls) return;
                options.Protocols = web.Http.Http2 ? HttpProtocols.Http1AndHttp2 : HttpProtocols.Http1;
                options.UseHttps(HttpsOptions(tls));
            }
            // Socket activation: the descriptors from SD_LISTEN_FDS_START (3) on, as sd_listen_fds
            // hands them over (LISTEN_PID and LISTEN_FDS checked by Kestrel).
            if (listeners.SystemdSockets > 0) kestrel.UseSystemd(Configure);
            foreach (var listen in listeners.Addresses)
            {
                if (listen.Host is null) kestrel.ListenAnyIP(listen.Port, Configure);
                else if (listen.Host == "localhost") kestrel.ListenLocalhost(listen.Port, Configure);
                else kestrel.Listen(IPAddress.Parse(listen.Host), listen.Port, Configure);
            }
        });
        builder.Services.AddSingleton<IStartupFilter>(new WebConfigStartupFilter(listeners, web));
        return builder;
    }

    /// <summary>The Kestrel HTTPS settings for a tls_server_config.</summary>
    public static HttpsConnectionAdapterOptions HttpsOptions(TlsServerConfig tls)
    {
        ArgumentNullException.ThrowIfNull(tls);
        var options = new HttpsConnectionAdapterOptions
        {
            ServerCertificate = tls.ServerCertificate,
            SslProtocols = tls.Protocols,
            CheckCertificateRevocation = false,
            HandshakeTimeout = TimeSpan.FromSeconds(10),
            ClientCertificateMode = tls.ClientAuthType switch
            {
                ClientAuthType.NoClientCert => ClientCertificateMode.NoCertificate,
                ClientAuthType.RequestClientCert or ClientAuthType.VerifyClientCertIfGiven => ClientCertificateMode.AllowCertificate,
                _ => ClientCertificateMode.RequireCertificate,
            },
            // Called only when a certificate was presented; Kestrel itself refuses a missing one under RequireCertificate.
            ClientCertificateValidation = (certificate, chain, _) => ValidateClientCertificate(tls, certificate, chain),
        };
        if (tls.ServerCertificateChain.Count > 0) options.ServerCertificateChain = tls.ServerCertificateChain;
        return options;
    }

    /// <summary>
    /// client_auth_type semantics: Request/RequireAny accept any certificate; the Verify kinds
    /// accept only one that chains to client_ca_file (and only to it: system roots are not
    /// trusted) and is valid now for client authentication.
    /// </summary>
    public static bool ValidateClientCertificate(TlsServerConfig tls, X509Certificate2 certificate, X509Chain? presented)
    {
        ArgumentNullException.ThrowIfNull(tls);
        ArgumentNullException.ThrowIfNull(certificate);
        if (!tls.VerifiesClientCertificate) return true;
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(tls.ClientCertificateAuthorities);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.ApplicationPolicy.Add(ClientAuthentication);
        chain.ChainPolicy.DisableCertificateDownloads = true;
        if (presented is not null)
            foreach (var element in presented.ChainElements)
                if (!element.Certificate.RawDataMemory.Span.SequenceEqual(certificate.RawDataMemory.Span))
                    chain.ChainPolicy.ExtraStore.Add(element.Certificate);
        try
        {
            return chain.Build(certificate);
        }
        finally
        {
            foreach (var element in chain.ChainElements) element.Certificate.Dispose();
        }
    }

    /// <summary>
    /// Headers from http_server_config and basic auth, for every path. <see cref="ConfigureCollectorEndpoint"/>
    /// already adds it; call this only when building a pipeline without that method.
    /// </summary>
    public static IApplicationBuilder UseCollectorWebConfig(this IApplicationBuilder app, WebConfig? web)
    {
        ArgumentNullException.ThrowIfNull(app);
        if (web is null) return app;
        var authenticator = new BasicAuthenticator(web.BasicAuthUsers);
        return app.UseMiddleware<WebConfigMiddleware>(web, authenticator);
    }
}

/// <summary>Adds the response headers, then asks for a password unless basic auth is off.</summary>
internal sealed class WebConfigMiddleware(RequestDelegate next, WebConfig web, BasicAuthenticator authenticator)
{
    public const string Challenge = "Basic realm=\"collector\"";

    public async Task InvokeAsync(HttpContext context)
    {
        foreach (var (name, value) in web.Http.Headers)
            context.Response.Headers[name] = value;
        if (authenticator.Enabled)
        {
            var authorization = context.Request.Headers.Authorization;
            var ok = authorization.Count == 1
                && await authenticator.CheckAsync(authorization[0], context.RequestAborted).ConfigureAwait(false);
            if (!ok)
            {
                context.Response.StatusCode = StatusCodes.Status401Unauthorized;
                context.Response.Headers.WWWAuthenticate = Challenge;
                context.Response.ContentType = "text/plain; charset=utf-8";
                await context.Response.WriteAsync("Unauthorized\n", context.RequestAborted).ConfigureAwait(false);
                return;
            }
        }
        await next(context).ConfigureAwait(false);
    }
}

internal sealed class WebConfigStartupFilter(Listeners listeners, WebConfig? web) : IStartupFilter
{
    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        var logger = app.ApplicationServices.GetRequiredService<ILoggerFactory>().CreateLogger("SiaExporter.Web");
        var where = listeners.ToString();
        if (web is null)
        {
            logger.LogInformation("http on {Address} (no WEB_CONFIG_FILE: no TLS, no password)", where);
        }
        else
        {
            foreach (var warning in web.Warnings) logger.LogWarning("WEB_CONFIG_FILE: {Warning}", warning);
            logger.LogInformation("{Scheme} on {Address}; client certificates: {ClientAuth}; basic auth: {Users} user(s); config {File}",
                web.Tls is null ? "http" : "https", where, web.Tls?.ClientAuthType.ToString() ?? "-", web.BasicAuthUsers.Count, web.Path);
            app.UseCollectorWebConfig(web);
        }
        next(app);
    };
}

/// <summary>
/// What Kestrel listens on: the LISTEN_ADDRESS addresses, or (WEB_SYSTEMD_SOCKET) the sockets
/// systemd passed, counted from LISTEN_FDS when LISTEN_PID is this process.
/// </summary>
public sealed record Listeners(IReadOnlyList<ListenAddress> Addresses, int SystemdSockets)
{
    /// <summary>The listeners <paramref name="options"/> ask for; <paramref name="environment"/> is the
    /// process environment (LISTEN_PID, LISTEN_FDS). Socket activation without sockets is an operator error.</summary>
    public static Listeners From(WebOptions options, Func<string, string?>? environment = null, int? processId = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!options.SystemdSocket) return new Listeners(ListenAddress.ParseList(options.ListenAddress), 0);
        var env = environment ?? Environment.GetEnvironmentVariable;
        var pid = (processId ?? Environment.ProcessId).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var count = env("LISTEN_PID") == pid
            && int.TryParse(env("LISTEN_FDS"), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n)
            ? n : 0;
        if (count <= 0)
            throw new OperatorException("WEB_SYSTEMD_SOCKET is on but systemd passed no socket (LISTEN_FDS/LISTEN_PID not set for this process)",
                "start the daemon through collector.socket (`systemctl enable --now collector.socket`), or turn WEB_SYSTEMD_SOCKET off to use LISTEN_ADDRESS");
        return new Listeners([], count);
    }

    public override string ToString() =>
        SystemdSockets > 0 ? $"{SystemdSockets} socket(s) from systemd"
        : string.Join(", ", Addresses.Select(a => a.Host is null ? $"*:{a.Port}" : a.ToString()));
}
