using System.Net;
using System.Text.Json;
using SiaExporter.Counters;
using SiaExporter.Dashboard;
using SiaExporter.Tests.Storage;
using SiaExporter.Web;
using Xunit;

namespace SiaExporter.Tests.Dashboard;

/// <summary>The JSON API on a seeded database: every number equal to the sum of the seeded rows.</summary>
public sealed class DashboardApiTests
{
    private static readonly string[] Directions = ["down", "up"];
    private static readonly long From = DashboardRig.Start;
    private static readonly long To = DashboardRig.Start + 3 * 86400;

    private static async Task<(HttpStatusCode Status, JsonElement Json, string Text)> Get(DashboardRig rig, string pathAndQuery)
    {
        using var http = new HttpClient();
        using var response = await http.GetAsync($"http://127.0.0.1:{rig.Port}{pathAndQuery}");
        var text = await response.Content.ReadAsStringAsync();
        var json = response.Content.Headers.ContentType?.MediaType == "application/json" ? JsonDocument.Parse(text).RootElement.Clone() : default;
        return (response.StatusCode, json, text);
    }

    private static long[] Longs(JsonElement array) => array.EnumerateArray().Select(e => e.GetInt64()).ToArray();

    [Fact]
    public async Task Host_history_per_step_and_class_equals_the_seeded_host_rows_and_finds_the_one_spike()
    {
        await using var rig = await DashboardRig.StartAsync();
        var (status, json, text) = await Get(rig, $"/api/v1/history?from={From}&to={To}&step=3600");
        Assert.True(status == HttpStatusCode.OK, text);
        Assert.Equal(3600, json.GetProperty("step").GetInt64());
        Assert.Equal(300, json.GetProperty("resolution").GetInt64());
        var t = Longs(json.GetProperty("t"));
        Assert.Equal(72, t.Length);
        var host = rig.Rows.Where(r => r.Client is null).ToList();
        // The configured classes first, then the one of an earlier PORTS found in the rows.
        Assert.Equal(["9981/tcp", "9984/tcp", "9984/udp", "8080/tcp"], json.GetProperty("classes").EnumerateArray().Select(e => e.GetString()!).ToArray());
        var checkedValues = 0;
        foreach (var series in json.GetProperty("series").EnumerateArray())
        {
            var cls = series.GetProperty("class").GetString()!;
            var direction = series.GetProperty("direction").GetString()!;
            var values = Longs(series.GetProperty("values"));
            for (var i = 0; i < t.Length; i++)
            {
                var expected = host.Where(r => r.Class == cls && r.Bucket >= t[i] && r.Bucket < t[i] + 3600).Sum(r => r.Bytes(direction));
                Assert.True(expected == values[i], $"{cls} {direction} at {t[i]}: expected {expected}, got {values[i]}");
                checkedValues++;
            }
        }
        Assert.Equal(4 * 2 * 72, checkedValues);
        foreach (var total in json.GetProperty("totals").EnumerateArray())
        {
            var cls = total.GetProperty("class").GetString()!;
            var direction = total.GetProperty("direction").GetString()!;
            Assert.Equal(host.Where(r => r.Class == cls).Sum(r => r.Bytes(direction)), total.GetProperty("bytes").GetInt64());
            Assert.Equal(host.Where(r => r.Class == cls).Sum(r => r.Packets(direction)), total.GetProperty("packets").GetInt64());
        }
        var spike = Assert.Single(json.GetProperty("spikes").EnumerateArray());
        Assert.Equal(DashboardRig.SpikeBucket, spike.GetProperty("t").GetInt64());
        Assert.Equal("down", spike.GetProperty("direction").GetString());
        var spikeBytes = host.Single(r => r.Bucket == DashboardRig.SpikeBucket && r.Class == "9981/tcp").DownBytes;
        Assert.Equal(spikeBytes / 300.0, spike.GetProperty("rate").GetDouble(), 6);
    }

    [Fact]
    public async Task Default_step_is_chosen_for_the_range_and_the_range_is_aligned_to_it()
    {
        await using var rig = await DashboardRig.StartAsync();
        var (_, day, _) = await Get(rig, $"/api/v1/history?from={From + 7}&to={From + 86400 - 5}");
        Assert.Equal(300, day.GetProperty("step").GetInt64());
        Assert.Equal(From, day.GetProperty("from").GetInt64());
        Assert.Equal(From + 86400, day.GetProperty("to").GetInt64());
        var (_, year, _) = await Get(rig, $"/api/v1/history?from={To - 365 * 86400}&to={To}");
        Assert.Equal(86400, year.GetProperty("step").GetInt64());
        var total = year.GetProperty("series").EnumerateArray().Sum(s => Longs(s.GetProperty("values")).Sum());
        Assert.Equal(rig.Rows.Where(r => r.Client is null).Sum(r => r.UpBytes + r.DownBytes), total);
    }

    [Fact]
    public async Task A_clients_history_and_class_split_equal_its_seeded_rows()
    {
        await using var rig = await DashboardRig.StartAsync();
        foreach (var client in new[] { "2001:db8:1:2::5", "198.51.100.4", "overflow" })
        {
            var (status, json, text) = await Get(rig, $"/api/v1/history?from={From}&to={To}&step=7200&client={Uri.EscapeDataString(client)}");
            Assert.True(status == HttpStatusCode.OK, text);
            Assert.Equal(client, json.GetProperty("client").GetString());
            Assert.Empty(json.GetProperty("spikes").EnumerateArray());
            var own = rig.Rows.Where(r => r.Client == client).ToList();
            var t = Longs(json.GetProperty("t"));
            foreach (var series in json.GetProperty("series").EnumerateArray())
            {
                var cls = series.GetProperty("class").GetString()!;
                var direction = series.GetProperty("direction").GetString()!;
                var values = Longs(series.GetProperty("values"));
                for (var i = 0; i < t.Length; i++)
                    Assert.Equal(own.Where(r => r.Class == cls && r.Bucket >= t[i] && r.Bucket < t[i] + 7200).Sum(r => r.Bytes(direction)), values[i]);
            }
            foreach (var total in json.GetProperty("totals").EnumerateArray())
            {
                var cls = total.GetProperty("class").GetString()!;
                var direction = total.GetProperty("direction").GetString()!;
                Assert.Equal(own.Where(r => r.Class == cls).Sum(r => r.Bytes(direction)), total.GetProperty("bytes").GetInt64());
            }
        }
    }

    [Fact]
    public async Task Top_clients_are_ranked_by_bytes_with_exact_class_totals_and_sparklines()
    {
        await using var rig = await DashboardRig.StartAsync();
        var from = From + 86400;
        var (status, json, text) = await Get(rig, $"/api/v1/clients?from={from}&to={To}&limit=4");
        Assert.True(status == HttpStatusCode.OK, text);
        var rows = rig.Rows.Where(r => r.Client is not null && r.Bucket >= from).ToList();
        var expected = rows.GroupBy(r => r.Client!).Select(g => (Client: g.Key, Bytes: g.Sum(r => r.UpBytes + r.DownBytes)))
            .OrderByDescending(c => c.Bytes).ThenBy(c => c.Client, StringComparer.Ordinal).Take(4).ToList();
        var clients = json.GetProperty("clients").EnumerateArray().ToList();
        Assert.Equal(expected.Select(c => c.Client), clients.Select(c => c.GetProperty("client").GetString()));
        var step = json.GetProperty("step").GetInt64();
        Assert.Equal(3600, step); // 48 h in at most 60 sparkline points
        foreach (var c in clients)
        {
            var own = rows.Where(r => r.Client == c.GetProperty("client").GetString()).ToList();
            Assert.Equal(own.Sum(r => r.DownBytes), c.GetProperty("down").GetInt64());
            Assert.Equal(own.Sum(r => r.UpBytes), c.GetProperty("up").GetInt64());
            foreach (var cls in c.GetProperty("classes").EnumerateArray())
            {
                var name = cls.GetProperty("class").GetString()!;
                var direction = cls.GetProperty("direction").GetString()!;
                Assert.Equal(own.Where(r => r.Class == name).Sum(r => r.Bytes(direction)), cls.GetProperty("bytes").GetInt64());
                Assert.Equal(own.Where(r => r.Class == name).Sum(r => r.Packets(direction)), cls.GetProperty("packets").GetInt64());
            }
            var spark = Longs(c.GetProperty("spark"));
            Assert.Equal(48, spark.Length);
            for (var i = 0; i < spark.Length; i++)
                Assert.Equal(own.Where(r => r.Bucket >= from + i * step && r.Bucket < from + (i + 1) * step).Sum(r => r.UpBytes + r.DownBytes), spark[i]);
        }
    }

    [Fact]
    public async Task Anonymize_merges_stored_addresses_into_their_network_and_no_address_is_shown()
    {
        await using var rig = await DashboardRig.StartAsync(anonymize: ClientPrefix.Parse("/24,/48"));
        var (_, json, text) = await Get(rig, $"/api/v1/clients?from={From}&to={To}&limit=100");
        var shown = json.GetProperty("clients").EnumerateArray().ToDictionary(c => c.GetProperty("client").GetString()!, c => c.GetProperty("total").GetInt64());
        Assert.Equal(["198.51.100.0", "2001:db8:1::", "203.0.113.0", "overflow"], shown.Keys.Order(StringComparer.Ordinal));
        var clientRows = rig.Rows.Where(r => r.Client is not null).ToList();
        Assert.Equal(clientRows.Where(r => r.Client!.StartsWith("203.0.113.", StringComparison.Ordinal)).Sum(r => r.UpBytes + r.DownBytes), shown["203.0.113.0"]);
        Assert.Equal(clientRows.Where(r => r.Client!.StartsWith("2001:db8:1:", StringComparison.Ordinal)).Sum(r => r.UpBytes + r.DownBytes), shown["2001:db8:1::"]);

        var (_, drill, drillText) = await Get(rig, $"/api/v1/history?from={From}&to={To}&step=86400&client=203.0.113.0");
        Assert.Equal(shown["203.0.113.0"], drill.GetProperty("totals").EnumerateArray().Sum(t => t.GetProperty("bytes").GetInt64()));
        var (_, full, _) = await Get(rig, $"/api/v1/history?from={From}&to={To}&step=86400&client=203.0.113.7");
        Assert.Equal(0, full.GetProperty("totals").EnumerateArray().Sum(t => t.GetProperty("bytes").GetInt64()));

        var (_, _, csv) = await Get(rig, $"/api/v1/export?from={From}&to={To}&format=csv");
        foreach (var body in new[] { text, drillText, csv })
            foreach (var address in DashboardRig.Clients.Where(c => c != "overflow"))
                Assert.DoesNotContain(address, body, StringComparison.Ordinal);
        var (_, summary, _) = await Get(rig, "/api/v1/summary");
        Assert.Equal("/24,/48", summary.GetProperty("anonymize").GetString());
    }

    [Fact]
    public async Task Export_has_every_client_row_of_the_range_in_csv_and_json()
    {
        await using var rig = await DashboardRig.StartAsync();
        var from = From + 3600;
        var to = From + 7 * 3600;
        var expected = rig.Rows.Where(r => r.Client is not null && r.Bucket >= from && r.Bucket < to).ToList();
        var (status, _, csv) = await Get(rig, $"/api/v1/export?from={from}&to={to}&format=csv");
        Assert.Equal(HttpStatusCode.OK, status);
        var lines = csv.TrimEnd('\n').Split('\n');
        Assert.Equal("bucket,client,class,up_bytes,down_bytes,up_packets,down_packets", lines[0]);
        Assert.Equal(expected.Count, lines.Length - 1);
        var parsed = lines.Skip(1).Select(l => l.Split(',')).Select(f => new SeedDetail(long.Parse(f[0], System.Globalization.CultureInfo.InvariantCulture), f[1], f[2],
            long.Parse(f[3], System.Globalization.CultureInfo.InvariantCulture), long.Parse(f[4], System.Globalization.CultureInfo.InvariantCulture),
            long.Parse(f[5], System.Globalization.CultureInfo.InvariantCulture), long.Parse(f[6], System.Globalization.CultureInfo.InvariantCulture))).ToHashSet();
        Assert.True(parsed.SetEquals(expected), "the CSV rows are not the seeded rows");

        var (_, json, _) = await Get(rig, $"/api/v1/export?from={from}&to={to}&format=json");
        var rows = json.EnumerateArray().ToList();
        Assert.Equal(expected.Count, rows.Count);
        Assert.Equal(expected.Sum(r => r.DownBytes), rows.Sum(r => r.GetProperty("downBytes").GetInt64()));
        Assert.Equal(expected.Sum(r => r.UpPackets), rows.Sum(r => r.GetProperty("upPackets").GetInt64()));
    }

    [Theory]
    [InlineData("/api/v1/history?from=2000&to=1000", "must be before")]
    [InlineData("/api/v1/history?from=abc", "is not an integer")]
    [InlineData("/api/v1/history?step=450", "multiple of 300")]
    [InlineData("/api/v1/history?step=123", "must be from 300")]
    [InlineData("/api/v1/history?from=0&to=86400000", "at most")]
    [InlineData("/api/v1/history?from=1000000&to=4000000&step=300", "choose a larger step")]
    [InlineData("/api/v1/history?client=not-an-address", "is not an IP address")]
    [InlineData("/api/v1/history?clients=1", "unknown parameter 'clients'")]
    [InlineData("/api/v1/history?step=300&step=600", "given 2 times")]
    [InlineData("/api/v1/clients?limit=1000", "limit (1000) must be from 1 to 100")]
    [InlineData("/api/v1/clients?limit=0", "must be from 1")]
    [InlineData("/api/v1/export?format=xml", "is not csv or json")]
    [InlineData("/api/v1/summary?x=1", "unknown parameter")]
    public async Task Bad_input_is_refused_with_400_and_a_message(string pathAndQuery, string message)
    {
        await using var rig = await DashboardRig.StartAsync(seed: false);
        var (status, json, text) = await Get(rig, pathAndQuery);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains(message, json.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Summary_has_the_kernel_totals_and_live_rates_between_samples()
    {
        await using var rig = await DashboardRig.StartAsync(seed: false);
        var before = rig.Snapshot;
        var later = new CounterSnapshot(before.Classes, before.Generation, before.TakenAt.AddSeconds(10), before.Clients, before.ClientSlots,
            before.Totals.Select((t, i) => new Traffic(t.Bytes + (ulong)(i + 1) * 1000, t.Packets + 1)).ToArray(), before.Overflow);
        rig.Live.Add(before);
        rig.Live.Add(later);
        var (status, json, text) = await Get(rig, "/api/v1/summary");
        Assert.True(status == HttpStatusCode.OK, text);
        Assert.Equal("seeded", json.GetProperty("host").GetString());
        var totals = json.GetProperty("totals").EnumerateArray().ToList();
        for (var c = 0; c < before.Classes.Count; c++)
            foreach (var direction in Directions)
            {
                var slot = PortClassSet.Slot(c, direction == "up" ? Direction.Up : Direction.Down);
                var row = totals.Single(t => t.GetProperty("class").GetString() == before.Classes.Classes[c].ToString() && t.GetProperty("direction").GetString() == direction);
                Assert.Equal((long)before.Totals[slot].Bytes, row.GetProperty("bytes").GetInt64());
                var series = json.GetProperty("live").GetProperty("series").EnumerateArray()
                    .Single(s => s.GetProperty("class").GetString() == before.Classes.Classes[c].ToString() && s.GetProperty("direction").GetString() == direction);
                Assert.Equal((slot + 1) * 1000 / 10.0, Assert.Single(series.GetProperty("values").EnumerateArray()).GetDouble());
            }
        Assert.Equal(later.TakenAt.ToUnixTimeSeconds(), Assert.Single(json.GetProperty("live").GetProperty("t").EnumerateArray()).GetInt64());
        var billing = json.GetProperty("billing");
        Assert.Equal(new DateTimeOffset(2026, 3, 1, 0, 0, 0, TimeSpan.Zero).ToUnixTimeSeconds(), billing.GetProperty("from").GetInt64());
        Assert.Equal(new DateTimeOffset(2026, 4, 1, 0, 0, 0, TimeSpan.Zero).ToUnixTimeSeconds(), billing.GetProperty("to").GetInt64());
    }

    [Fact]
    public async Task The_page_and_its_assets_come_from_the_binary_with_a_self_only_policy()
    {
        await using var rig = await DashboardRig.StartAsync(seed: false);
        using var http = new HttpClient();
        using var page = await http.GetAsync($"http://127.0.0.1:{rig.Port}/");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        var csp = page.Headers.GetValues("Content-Security-Policy").Single();
        Assert.Contains("default-src 'none'", csp, StringComparison.Ordinal);
        Assert.Contains("connect-src 'self'", csp, StringComparison.Ordinal);
        var html = await page.Content.ReadAsStringAsync();
        Assert.Contains("src=\"assets/app.js\"", html, StringComparison.Ordinal);
        Assert.DoesNotContain("http", html, StringComparison.OrdinalIgnoreCase); // nothing from elsewhere: relative URLs only
        foreach (var asset in new[] { "app.js", "app.css" })
        {
            using var response = await http.GetAsync($"http://127.0.0.1:{rig.Port}/assets/{asset}");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.True((await response.Content.ReadAsByteArrayAsync()).Length > 1000);
            var etag = response.Headers.ETag!;
            using var again = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{rig.Port}/assets/{asset}");
            again.Headers.IfNoneMatch.Add(etag);
            using var notModified = await http.SendAsync(again);
            Assert.Equal(HttpStatusCode.NotModified, notModified.StatusCode);
        }
        using var missing = await http.GetAsync($"http://127.0.0.1:{rig.Port}/assets/nothing.js");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }
}

/// <summary>The live chart's samples: exact rates, and a gap where the counters restarted.</summary>
public sealed class LiveRatesTests
{
    [Fact]
    public void Rates_are_bytes_per_second_between_samples_and_null_across_a_new_map_generation()
    {
        var live = new LiveRates(() => throw new InvalidOperationException(), TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger<LiveRates>.Instance);
        var at = DashboardRig.Now;
        var a = StorageFixture.Snap(StorageFixture.Gen1, at, ("192.0.2.1", [1000, 0, 0, 0, 0, 0]));
        var b = StorageFixture.Snap(StorageFixture.Gen1, at.AddSeconds(10), ("192.0.2.1", [6000, 0, 0, 0, 0, 0]));
        var c = StorageFixture.Snap(StorageFixture.Gen2, at.AddSeconds(20), ("192.0.2.1", [10, 0, 0, 0, 0, 0]));
        var d = StorageFixture.Snap(StorageFixture.Gen2, at.AddSeconds(25), ("192.0.2.1", [510, 0, 0, 0, 0, 0]));
        foreach (var s in new[] { a, b, c, d }) live.Add(s);
        var view = live.Read(PortClassSet.DefaultSet);
        Assert.Equal([at.AddSeconds(10).ToUnixTimeSeconds(), at.AddSeconds(20).ToUnixTimeSeconds(), at.AddSeconds(25).ToUnixTimeSeconds()], view.T);
        var down9981 = view.Series.Single(s => s.Class == "9981/tcp" && s.Direction == "down").Values;
        Assert.Equal([500.0, null, 100.0], down9981);
        Assert.All(view.Series.Where(s => s.Class != "9981/tcp" || s.Direction != "down"), s => Assert.Equal([0.0, null, 0.0], s.Values));
    }
}
