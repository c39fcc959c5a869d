using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;

namespace SiaExporter.Web;

/// <summary>
/// Checks an "Authorization: Basic …" header against basic_auth_users (bcrypt hashes).
/// bcrypt at cost 10 takes 50–100 ms, so a successful check is remembered for a short while
/// (<see cref="CacheLifetime"/>, default 2 minutes, not extended on use): one bcrypt per user
/// per lifetime at a 15 s scrape interval. What is remembered per user is an HMAC-SHA256 of
/// user:password under a key made at start-up (no password kept in memory), compared in
/// constant time. Failures are never remembered. An unknown user is checked against a dummy
/// hash of the same cost, so timing does not tell which users exist. bcrypt runs one at a
/// time, so a flood of wrong passwords costs one core at most.
/// </summary>
public sealed class BasicAuthenticator : IDisposable
{
    private readonly IReadOnlyDictionary<string, string> _users;
    private readonly ConcurrentDictionary<string, Remembered> _remembered = new(StringComparer.Ordinal);
    private readonly byte[] _hmacKey = RandomNumberGenerator.GetBytes(32);
    private readonly SemaphoreSlim _bcrypt = new(1, 1);
    private readonly TimeProvider _time;
    private readonly Lazy<string> _dummyHash;
    private long _verifications;

    private sealed record Remembered(byte[] Digest, DateTimeOffset Expires);

    public BasicAuthenticator(IReadOnlyDictionary<string, string> users, TimeSpan? cacheLifetime = null, TimeProvider? time = null)
    {
        _users = users;
        CacheLifetime = cacheLifetime ?? TimeSpan.FromMinutes(2);
        _time = time ?? TimeProvider.System;
        var cost = users.Count == 0 ? 10 : users.Values.Max(h => int.Parse(h.AsSpan(h.IndexOf('$', 1) + 1, 2), System.Globalization.CultureInfo.InvariantCulture));
        _dummyHash = new Lazy<string>(() => BCrypt.Net.BCrypt.HashPassword(Convert.ToBase64String(RandomNumberGenerator.GetBytes(18)), cost),
            LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <summary>False when basic_auth_users is empty: every request passes.</summary>
    public bool Enabled => _users.Count > 0;

    public TimeSpan CacheLifetime { get; }

    /// <summary>bcrypt comparisons run so far (cache misses); for tests and diagnostics.</summary>
    public long BcryptVerifications => Interlocked.Read(ref _verifications);

    /// <summary>True when <paramref name="authorization"/> carries a configured user and its password.</summary>
    public async ValueTask<bool> CheckAsync(string? authorization, CancellationToken cancellationToken = default)
    {
        if (!Enabled) return true;
        if (!TryDecode(authorization, out var user, out var password)) return false;

        var known = _users.TryGetValue(user, out var hash);
        var digest = Digest(user, password);
        if (known && _remembered.TryGetValue(user, out var r) && r.Expires > _time.GetUtcNow()
            && CryptographicOperations.FixedTimeEquals(r.Digest, digest))
            return true;

        bool ok;
        await _bcrypt.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            Interlocked.Increment(ref _verifications);
            ok = Verify(password, known ? hash! : _dummyHash.Value) && known;
        }
        finally
        {
            _bcrypt.Release();
        }
        if (ok) _remembered[user] = new Remembered(digest, _time.GetUtcNow() + CacheLifetime);
        return ok;
    }

    /// <summary>Splits "Basic base64(user:password)"; false for anything else.</summary>
    public static bool TryDecode(string? authorization, out string user, out string password)
    {
        user = password = "";
        if (authorization is null || authorization.Length < 6
            || !authorization.AsSpan(0, 6).Equals("Basic ", StringComparison.OrdinalIgnoreCase))
            return false;
        var encoded = authorization.AsSpan(6).Trim();
        var buffer = new byte[(encoded.Length * 3 / 4) + 3];
        if (!Convert.TryFromBase64Chars(encoded, buffer, out var n)) return false;
        string text;
        try
        {
            text = new UTF8Encoding(false, true).GetString(buffer, 0, n);
        }
        catch (DecoderFallbackException)
        {
            return false;
        }
        var colon = text.IndexOf(':');
        if (colon < 0) return false;
        user = text[..colon];
        password = text[(colon + 1)..];
        return true;
    }

    private byte[] Digest(string user, string password) =>
        HMACSHA256.HashData(_hmacKey, Encoding.UTF8.GetBytes(user + ":" + password));

    private static bool Verify(string password, string hash)
    {
        try
        {
            return BCrypt.Net.BCrypt.Verify(password, hash);
        }
        catch (Exception e) when (e is BCrypt.Net.SaltParseException or ArgumentException)
        {
            return false;
        }
    }

    public void Dispose() => _bcrypt.Dispose();
}
