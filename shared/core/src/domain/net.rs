//! Outbound safety (SPEC §6): which addresses a webhook may never reach, and the static
//! checks of a target URL. DNS resolution happens in the sender adapter; the verdict on each
//! resolved address is made here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use url::Url;

use super::Invalid;

/// Longest webhook URL, in characters (SPEC §4).
pub const MAX_URL_LEN: usize = 2048;

/// Why an address is refused, or `None` when it is a public unicast address.
pub fn blocked_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => blocked_v4(v4),
        IpAddr::V6(v6) => blocked_v6(v6),
    }
}

fn in4(ip: Ipv4Addr, net: &str) -> bool {
    net.parse::<Ipv4Net>()
        .map(|n| n.contains(&ip))
        .unwrap_or(false)
}

fn in6(ip: Ipv6Addr, net: &str) -> bool {
    net.parse::<Ipv6Net>()
        .map(|n| n.contains(&ip))
        .unwrap_or(false)
}

fn blocked_v4(ip: Ipv4Addr) -> Option<&'static str> {
    const RANGES: &[(&str, &str)] = &[
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "carrier-grade NAT"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local (cloud metadata)"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
    ];
    RANGES
        .iter()
        .find(|(net, _)| in4(ip, net))
        .map(|(_, why)| *why)
}

fn blocked_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    // IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::a.b.c.d):
    // judge the IPv4 address inside.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return blocked_v4(v4);
    }
    let seg = ip.segments();
    // an IPv4 address carried in two 16-bit segments
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    let embedded = v4(seg[6], seg[7]);
    if seg[..6] == [0, 0, 0, 0, 0, 0] {
        return Some(blocked_v4(embedded).unwrap_or("IPv4-compatible"));
    }
    // The local-use NAT64 prefix (RFC 8215) is not globally reachable, and its translator may
    // take the IPv4 address from any position RFC 6052 allows within it (bits 48–88 with the
    // `u` octet skipped, 56–96, 72–104, or the last 32): refused whole, like a private range.
    if in6(ip, "64:ff9b:1::/48") {
        return Some("local-use NAT64");
    }
    // The well-known NAT64 prefix (64:ff9b::/96) and SIIT (::ffff:0:a.b.c.d) carry the IPv4
    // address in the last 32 bits.
    if (in6(ip, "64:ff9b::/96") || in6(ip, "::ffff:0:0:0/96"))
        && let Some(why) = blocked_v4(embedded)
    {
        return Some(why);
    }
    // 6to4 (2002:a.b.c.d::/48) carries it in bits 16–48.
    if in6(ip, "2002::/16")
        && let Some(why) = blocked_v4(v4(seg[1], seg[2]))
    {
        return Some(why);
    }
    // Teredo (2001:0::/32) carries the client's IPv4 address inverted in the last 32 bits and
    // the server's in bits 32–64: either may lead inside.
    if in6(ip, "2001::/32") {
        let server = v4(seg[2], seg[3]);
        let client = Ipv4Addr::from(!u32::from(embedded));
        if let Some(why) = blocked_v4(server).or_else(|| blocked_v4(client)) {
            return Some(why);
        }
    }
    const RANGES: &[(&str, &str)] = &[
        ("fc00::/7", "private (unique local)"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
        ("100::/64", "discard"),
        ("2001:db8::/32", "documentation"),
    ];
    RANGES
        .iter()
        .find(|(net, _)| in6(ip, net))
        .map(|(_, why)| *why)
}

/// The static checks of a webhook URL: absolute `http`/`https`, a host, at most 2048
/// characters, and — unless private targets are allowed — no literal private address and
/// no `localhost` name. `field` names the URL in errors.
pub fn check_url(text: &str, field: &str, allow_private: bool) -> Result<Url, Invalid> {
    if text.len() > MAX_URL_LEN {
        return Err(Invalid::new(
            "invalid_url",
            field,
            format!("must be at most {MAX_URL_LEN} characters"),
        ));
    }
    let url = Url::parse(text).map_err(|e| {
        Invalid::new(
            "invalid_url",
            field,
            format!("is not an absolute URL ({e})"),
        )
    })?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(Invalid::new("invalid_url", field, "must use http or https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Invalid::new(
            "invalid_url",
            field,
            "must not carry credentials; send them in a header",
        ));
    }
    let Some(host) = url.host() else {
        return Err(Invalid::new("invalid_url", field, "must name a host"));
    };
    if allow_private {
        return Ok(url);
    }
    let refused = |why: &str| {
        Invalid::new(
            "forbidden_target",
            field,
            format!("points to a {why} address; webhooks may only reach public addresses"),
        )
    };
    match host {
        url::Host::Ipv4(ip) => {
            if let Some(why) = blocked_reason(IpAddr::V4(ip)) {
                return Err(refused(why));
            }
        }
        url::Host::Ipv6(ip) => {
            if let Some(why) = blocked_reason(IpAddr::V6(ip)) {
                return Err(refused(why));
            }
        }
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if name == "localhost" || name.ends_with(".localhost") {
                return Err(refused("loopback"));
            }
        }
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(s: &str) -> bool {
        blocked_reason(s.parse().unwrap()).is_some()
    }

    #[test]
    fn private_and_special_addresses_are_blocked() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            // IPv4 inside other IPv6 forms: 6to4, Teredo (server, and inverted client), SIIT
            "2002:a9fe:a9fe::",
            "2002:7f00:1::1",
            "2002:0a00:0001::",
            "2001:0:a9fe:a9fe::1",
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
            "::ffff:0:a9fe:a9fe",
            "::ffff:0:7f00:1",
            // local-use NAT64 (64:ff9b:1::/48): 127.0.0.1 and 10.0.0.1 where a /48, /56 or /64
            // translator takes them, a public address in the last 32 bits
            "64:ff9b:1:7f00:0:100:808:808",
            "64:ff9b:1:a00:0:100:808:808",
            "64:ff9b:1:7f:0:1:808:808",
            "64:ff9b:1:0:a:0:100:808",
            "64:ff9b:1::7f00:1",
        ] {
            assert!(blocked(ip), "{ip} should be blocked");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "2002:0808:0808::1",
            "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
            "::ffff:0:808:808",
        ] {
            assert!(!blocked(ip), "{ip} should pass");
        }
    }

    #[test]
    fn url_checks() {
        let f = "steps[1].url";
        assert!(check_url("https://crm.example.com/hooks", f, false).is_ok());
        for bad in [
            "ftp://x.example.com",
            "/relative",
            "http://",
            "http://127.0.0.1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[64:ff9b:1:7f00:0:100:808:808]/",
            "http://[64:ff9b:1:a00:0:100:808:808]/",
            "http://localhost:8080/",
            "http://169.254.169.254/latest/meta-data",
            "http://user:pw@example.com/",
        ] {
            let e = check_url(bad, f, false).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(f), "{bad}");
        }
        assert!(check_url("http://127.0.0.1:9000/", f, true).is_ok());
        let long = format!("https://example.com/{}", "a".repeat(2048));
        assert!(check_url(&long, f, true).is_err());
    }
}
