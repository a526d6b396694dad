"""geworker's TLS defaults on the contexts it makes, and what it says of an app's own."""

from __future__ import annotations

import ssl

from geworker.transport.tls import harden, weaknesses


def test_harden_sets_tls_1_2_and_no_compression_or_renegotiation():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.options &= ~ssl.OP_NO_COMPRESSION
    assert weaknesses(context) == ["TLS versions below 1.2 (TLSv1)", "TLS compression"]
    harden(context)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.options & ssl.OP_NO_COMPRESSION
    assert context.options & ssl.OP_NO_RENEGOTIATION
    assert weaknesses(context) == []


def test_harden_keeps_a_stricter_minimum():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    assert harden(context).minimum_version == ssl.TLSVersion.TLSv1_3
