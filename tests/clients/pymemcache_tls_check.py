#!/usr/bin/env python3
"""Drive a TLS ringcache listener (node or proxy) with pymemcache's `tls_context`.

Usage: pymemcache_tls_check.py HOST:PORT CA_PEM CLIENT_CERT_PEM CLIENT_KEY_PEM [--mutual]

With a context that trusts CA_PEM and presents the client certificate: set/get, get_many,
incr, delete and version must work. Then, refusals: a context that trusts nothing of ours
(the system store) must fail the handshake; with --mutual (the listener requires client
certificates, ssl_verify_mode 2) a context without a client certificate must be refused too.
Exits non-zero with a message on the first wrong answer.
"""
import ssl
import sys

from checklist import Checks
from pymemcache.client.base import Client


def client(host, port, ctx):
    return Client((host, int(port)), connect_timeout=5, timeout=5, default_noreply=False,
                  tls_context=ctx)


def refused(host, port, ctx):
    """Whether the server refuses this context: the handshake or the first request fails."""
    try:
        c = client(host, port, ctx)
        c.version()
    except Exception:  # ssl.SSLError, OSError, or pymemcache's own wrapping of them
        return True
    return False


def main() -> int:
    if "-h" in sys.argv[1:] or "--help" in sys.argv[1:]:
        print(__doc__)
        return 0
    args = [a for a in sys.argv[1:] if a != "--mutual"]
    if len(args) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    addr, ca, cert, key = args
    mutual = "--mutual" in sys.argv[1:]
    host, port = addr.rsplit(":", 1)
    check = Checks()

    ctx = ssl.create_default_context(cafile=ca)
    ctx.load_cert_chain(cert, key)
    c = client(host, port, ctx)
    check(c.set("tls-alpha", b"one") is True, "set over TLS")
    check(c.get("tls-alpha") == b"one", "get over TLS")
    check(c.set("tls-n", b"41") is True, "set counter")
    check(c.incr("tls-n", 1) == 42, "incr over TLS")
    got = c.get_many(["tls-alpha", "tls-n", "tls-missing"])
    check(got == {"tls-alpha": b"one", "tls-n": b"42"}, f"get_many over TLS: {got!r}")
    big = bytes(range(256)) * 1024
    check(c.set("tls-big", big) is True, "set 256 KiB")
    check(c.get("tls-big") == big, "get 256 KiB intact")
    check(c.delete("tls-alpha") is True, "delete over TLS")
    check(c.version().startswith(b"1.6"), "version over TLS")
    c.close()

    untrusting = ssl.create_default_context()
    check(refused(host, port, untrusting), "a client that does not trust our CA is refused")
    if mutual:
        no_cert = ssl.create_default_context(cafile=ca)
        check(refused(host, port, no_cert), "a client without a certificate is refused")
    print(f"pymemcache TLS: {check.passed} checks passed against {addr}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
