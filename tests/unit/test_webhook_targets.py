"""The SSRF rules of shared/webhook_targets.py: every refused spelling, the allow-list, inet_aton."""

from __future__ import annotations

import ipaddress
import socket
import unittest

from shared.errors import WebhookUrlNotAllowed
from shared.webhook_targets import check_addresses, check_url, parse_inet_aton, parse_networks, refusal

LOOPBACK_SPELLINGS = (
    "http://127.0.0.1/hook",
    "http://127.1/hook",
    "http://127.0.1/hook",
    "http://2130706433/hook",
    "http://0x7f000001/hook",
    "http://0X7F000001/hook",
    "http://0x7f.1/hook",
    "http://0177.0.0.1/hook",
    "http://017700000001/hook",
    "http://127.000.000.001/hook",
    "http://127.0.0.1./hook",
    "http://[::1]/hook",
    "http://[0:0:0:0:0:0:0:1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:7f00:1]/hook",
    "http://[0:0:0:0:0:ffff:127.0.0.1]/hook",
    "http://[64:ff9b::127.0.0.1]/hook",
    "http://[::127.0.0.1]/hook",
    "http://localhost/hook",
    "http://LOCALHOST:8080/hook",
    "http://localhost./hook",
    "http://api.localhost/hook",
    "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/hook",  # full-width digits: IDNA makes them 127.0.0.1
    "https://127.0.0.1:443/hook",
)
OTHER_REFUSED = (
    "http://10.0.0.1/",
    "http://10.255.255.255/",
    "http://172.16.0.1/",
    "http://172.31.255.255/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://[fe80::1]/",
    "http://[fd00::1]/",
    "http://[fc00::1]/",
    "http://100.64.0.1/",
    "http://100.127.255.255/",
    "http://0.0.0.0/",
    "http://0/",
    "http://[::]/",
    "http://224.0.0.1/",
    "http://239.255.255.250/",
    "http://[ff02::1]/",
    "http://255.255.255.255/",
    "http://240.0.0.1/",
    "http://192.0.2.1/",
    "http://198.18.0.1/",
    "http://[2001:db8::1]/",
    "http://[::ffff:10.0.0.1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    "http://[2001::1]/",  # Teredo
    "http://[fe80::1%25eth0]/",
    "http://0xa9fea9fe/",  # 169.254.169.254
    "http://2852039166/",  # 169.254.169.254
    "http://0251.0376.0251.0376/",  # 169.254.169.254 in octal
    "http://10.1/",
)
MALFORMED = (
    "ftp://example.com/x",
    "file:///etc/passwd",
    "gopher://example.com/",
    "javascript:alert(1)",
    "http://",
    "http:///path",
    "http://user:pw@example.com/",
    "http://user@example.com/",
    "http://example.com\\@127.0.0.1/",
    "http://%31%32%37.0.0.1/",
    "http://1.2.3.4.5/",
    "http://256.0.0.1/",
    "http://08.0.0.1/",
    "http://0x/",
    "http://exa mple.com/",
    "http://example.com:99999/",
    "http://8.8.8.8.8/",
    "http://134744072/",  # 8.8.8.8, but not in dotted-quad form
)
ALLOWED = (
    "https://example.com/hook",
    "http://example.com:8080/a/b?c=d",
    "https://pay.shop.example/webhooks/lightning",
    "https://xn--e1afmkfd.xn--p1ai/",
    "https://\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444/",  # IDN, encoded by yarl
    "http://8.8.8.8/",
    "http://1.1.1.1:8443/x",
    "http://[2606:4700:4700::1111]/",
    "http://[::ffff:8.8.8.8]/",
    "http://100.63.255.255/",
    "http://100.128.0.1/",
    "http://172.15.255.255/",
    "http://172.32.0.1/",
    "https://localhost.example.com/",
)


def refused(url: str, allowed=()) -> str | None:
    try:
        check_url(url, allowed)
    except WebhookUrlNotAllowed as exc:
        assert exc.code == "WEBHOOK_URL_NOT_ALLOWED" and exc.status == 400
        return exc.details[0]["message"]
    return None


class RefusedSpellingsTest(unittest.TestCase):
    def test_every_loopback_spelling_is_refused(self):
        for url in LOOPBACK_SPELLINGS:
            with self.subTest(url=url):
                self.assertIsNotNone(refused(url))

    def test_private_link_local_cgnat_multicast_reserved_are_refused(self):
        for url in OTHER_REFUSED:
            with self.subTest(url=url):
                self.assertIsNotNone(refused(url))

    def test_malformed_urls_and_odd_numeric_hosts_are_refused(self):
        for url in MALFORMED:
            with self.subTest(url=url):
                self.assertIsNotNone(refused(url))

    def test_public_targets_pass(self):
        for url in ALLOWED:
            with self.subTest(url=url):
                self.assertIsNone(refused(url))

    def test_a_name_is_left_for_delivery_time_and_a_literal_is_resolved_now(self):
        self.assertIsNone(check_url("https://example.com/x").addresses)
        self.assertEqual(check_url("http://8.8.8.8/").addresses, (ipaddress.ip_address("8.8.8.8"),))
        target = check_url("https://Example.COM:8443/x")
        self.assertEqual((target.host, target.port), ("example.com", 8443))

    def test_the_reason_names_what_a_numeric_spelling_means(self):
        self.assertIn("127.0.0.1, a loopback address", refused("http://0x7f000001/"))
        self.assertIn("loopback", refused("http://[::ffff:127.0.0.1]/"))


class AllowListTest(unittest.TestCase):
    loopback = parse_networks("127.0.0.0/8")

    def test_an_allowed_network_opens_exactly_that_network(self):
        self.assertIsNone(refused("http://127.0.0.1:9000/hook", self.loopback))
        self.assertIsNone(refused("http://127.5.6.7/hook", self.loopback))
        self.assertIsNone(refused("http://[::ffff:127.0.0.1]:9000/", self.loopback))
        self.assertIsNotNone(refused("http://10.0.0.1/", self.loopback))
        self.assertIsNotNone(refused("http://[::1]/", self.loopback))  # IPv6 loopback is another network
        self.assertIsNotNone(refused("http://169.254.169.254/", self.loopback))

    def test_other_spellings_and_names_stay_refused_even_when_allowed(self):
        self.assertIsNotNone(refused("http://127.1/", self.loopback))
        self.assertIsNotNone(refused("http://localhost/", self.loopback))

    def test_unspecified_and_multicast_are_never_one_receiver(self):
        everything = parse_networks("0.0.0.0/0, ::/0")
        self.assertEqual(refusal(ipaddress.ip_address("0.0.0.0"), everything), "unspecified")  # noqa: S104
        self.assertEqual(refusal(ipaddress.ip_address("224.0.0.1"), everything), "multicast")
        self.assertIsNone(refusal(ipaddress.ip_address("10.0.0.1"), everything))

    def test_networks_setting_parses_and_refuses_typos(self):
        self.assertEqual(
            parse_networks(" 10.1.0.0/16 , fd00::/8,,"),
            (ipaddress.ip_network("10.1.0.0/16"), ipaddress.ip_network("fd00::/8")),
        )
        self.assertEqual(parse_networks(""), ())
        for bad in ("10.0.0.1/8", "banana", "10.0.0.0/33"):
            with self.subTest(bad=bad), self.assertRaises(ValueError):
                parse_networks(bad)


class ResolvedAddressesTest(unittest.TestCase):
    def test_one_refused_address_among_public_ones_refuses_the_host(self):
        public = ipaddress.ip_address("93.184.216.34")
        check_addresses([public])
        with self.assertRaises(WebhookUrlNotAllowed) as ctx:
            check_addresses([public, ipaddress.ip_address("10.0.0.7")])
        self.assertEqual(ctx.exception.address, ipaddress.ip_address("10.0.0.7"))
        self.assertNotIn("10.0.0.7", ctx.exception.message)  # the caller is not told internal addresses

    def test_no_address_is_refused(self):
        with self.assertRaises(WebhookUrlNotAllowed):
            check_addresses([])


class InetAtonTest(unittest.TestCase):
    """Our parser reads numeric hosts as the C library's inet_aton does."""

    SPELLINGS = (
        "127.0.0.1", "127.1", "127.0.1", "2130706433", "0x7f000001", "0x7F.1", "0177.0.0.1",
        "017700000001", "0", "0x", "1.2.3.4.5", "08.1.1.1", "0x1.0x2.0x3.0x4", "256.1", "1.256.1.1",
        "4294967295", "4294967296", "1.16777215", "1.16777216", "1.2.65535", "1.2.65536", "00", "0x0",
        "000000000000000000000177.1", "1..2", "", ".", "1.", "a.b.c.d", "0xg",
    )  # fmt: skip

    def test_matches_the_system_inet_aton(self):
        for spelling in self.SPELLINGS:
            with self.subTest(spelling=spelling):
                try:
                    expected = ipaddress.IPv4Address(socket.inet_aton(spelling))
                except OSError:
                    expected = None
                self.assertEqual(parse_inet_aton(spelling), expected)
