"""The compressor filter's Accept-Encoding decision (Envoy's ``chooseEncoding``), without sockets.

tests/proxy/test_compressor.py checks the same decisions against Envoy 1.40
through real requests; here each rule is pinned down on its own, including
the ones a client can only reach with several compressor filters.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pyevent_envoy.http.filters.compressor import EncodingDecision, choose_encoding

GZIP_ANY = SimpleNamespace(encoding="gzip", content_types=frozenset(), choose_first=False)
GZIP_HTML = SimpleNamespace(encoding="gzip", content_types=frozenset({"text/html"}), choose_first=False)
BR = SimpleNamespace(encoding="br", content_types=frozenset(), choose_first=False)
BR_FIRST = SimpleNamespace(encoding="br", content_types=frozenset(), choose_first=True)

NOT_VALID = ("identity", EncodingDecision.NOT_VALID)
IDENTITY = ("identity", EncodingDecision.IDENTITY)
GZIP = ("gzip", EncodingDecision.VALID_COMPRESSOR)


@pytest.mark.parametrize(
    "accept_encoding,expected",
    [
        ("gzip", GZIP),
        ("  gzip  ", GZIP),
        ("gzip;q=1.0", GZIP),
        ("gzip; q = 0.5", GZIP),
        ("gzip;Q=0.5", GZIP),
        ("gzip;q=0", NOT_VALID),  # forbidden, and nothing else offered
        ("gzip;q=0.0", NOT_VALID),
        ("gzip;q=abc", NOT_VALID),  # the token is dropped: no tokens left
        ("gzip;q=1_0", NOT_VALID),  # not a number for absl::SimpleAtof
        ("gzip;q=abc, gzip", GZIP),
        ("gzip;level=1;q=0", GZIP),  # only a first parameter named q counts
        ("gzip;q=1e-1", GZIP),
        ("GZIP", NOT_VALID),  # coding names are compared case-sensitively
        ("", NOT_VALID),
        (",,", NOT_VALID),
        (", gzip,", GZIP),
        ("identity", IDENTITY),
        ("identity;q=0.5, gzip;q=0.4", IDENTITY),
        ("identity;q=0.4, gzip;q=0.5", GZIP),
        ("gzip;q=0.5, identity;q=0.5", GZIP),  # a tie keeps the first
        ("identity;q=0", NOT_VALID),
        ("br, deflate", NOT_VALID),
        ("br;q=0.9, gzip;q=0.1", GZIP),
        ("*", ("gzip", EncodingDecision.WILDCARD)),
        ("*, *", ("gzip", EncodingDecision.WILDCARD)),
        ("*;q=0.5, gzip;q=0.9", GZIP),
        ("gzip;q=0, *", NOT_VALID),  # gzip is forbidden: no compressor is left
        ("*;q=0", NOT_VALID),
        ("gzip;q=0.3, *;q=0.8", ("gzip", EncodingDecision.WILDCARD)),
    ],
)
def test_choose_encoding_with_one_gzip_compressor(accept_encoding, expected):
    assert choose_encoding(accept_encoding, "text/plain", (GZIP_ANY,)) == expected


def test_choose_encoding_skips_compressors_for_other_content_types():
    assert choose_encoding("gzip", "application/json", (GZIP_HTML,)) == NOT_VALID
    assert choose_encoding("gzip", "text/html; charset=utf-8", (GZIP_HTML,)) == GZIP
    assert choose_encoding("gzip", "TEXT/HTML", (GZIP_HTML,)) == GZIP
    # Without a Content-Type every compressor takes part.
    assert choose_encoding("gzip", None, (GZIP_HTML,)) == GZIP


def test_choose_encoding_between_compressors():
    assert choose_encoding("gzip;q=0.5, br;q=0.5", None, (GZIP_ANY, BR)) == GZIP
    assert choose_encoding("gzip;q=0.5, br;q=0.5", None, (GZIP_ANY, BR_FIRST)) == ("br", EncodingDecision.VALID_COMPRESSOR)
    # The wildcard picks the compressor registered first.
    assert choose_encoding("*", None, (BR, GZIP_ANY)) == ("br", EncodingDecision.WILDCARD)
    assert choose_encoding("br;q=0, *", None, (BR, GZIP_ANY)) == ("gzip", EncodingDecision.WILDCARD)
    # A second compressor of the same coding is not a second choice.
    assert choose_encoding("*", None, (GZIP_HTML, GZIP_ANY, BR)) == ("gzip", EncodingDecision.WILDCARD)
