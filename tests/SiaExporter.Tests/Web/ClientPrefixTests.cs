using SiaExporter.Counters;
using SiaExporter.Web;
using Xunit;

namespace SiaExporter.Tests.Web;

public sealed class ClientPrefixTests
{
    [Theory]
    [InlineData("/24,/48", "203.0.113.57", "203.0.113.0/24")]
    [InlineData("/24,/48", "2001:db8:1:2::5", "2001:db8:1::/48")]
    [InlineData("/24,/48", "::ffff:198.51.100.200", "198.51.100.0/24")]
    [InlineData("/20,/56", "203.0.127.255", "203.0.112.0/20")]
    [InlineData("/20,/56", "2001:db8:1:2ff::1", "2001:db8:1:200::/56")]
    [InlineData("/0,/0", "203.0.113.57", "0.0.0.0/0")]
    [InlineData("/0,/0", "2001:db8::1", "::/0")]
    [InlineData("/32,/128", "203.0.113.57", "203.0.113.57")]
    [InlineData("/32,/128", "2001:db8::1", "2001:db8::1")]
    [InlineData("24, 64", "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64")]
    [InlineData("off", "203.0.113.57", "203.0.113.57")]
    public void Apply_shows_the_network(string prefix, string address, string label) =>
        Assert.Equal(label, ClientPrefix.Parse(prefix).Apply(ClientAddress.Parse(address)));

    [Fact]
    public void Mask_groups_clients_of_one_network()
    {
        var p = ClientPrefix.Parse("/24,/48");
        Assert.Equal(p.Mask(ClientAddress.Parse("203.0.113.1")), p.Mask(ClientAddress.Parse("203.0.113.254")));
        Assert.NotEqual(p.Mask(ClientAddress.Parse("203.0.113.1")), p.Mask(ClientAddress.Parse("203.0.114.1")));
        Assert.True(p.Mask(ClientAddress.Parse("203.0.113.1")).IsIPv4);
        Assert.True(ClientPrefix.None.IsNone);
        Assert.Equal("/24,/48", p.ToString());
    }

    [Theory]
    [InlineData("/24")]
    [InlineData("/33,/48")]
    [InlineData("/24,/129")]
    [InlineData("/-1,/48")]
    [InlineData("/24,/48,/64")]
    [InlineData("a,b")]
    public void Bad_prefixes_are_refused(string text)
    {
        Assert.Throws<FormatException>(() => ClientPrefix.Parse(text));
        Assert.False(ClientPrefix.TryParse(text, out _));
    }
}
