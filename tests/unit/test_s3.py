"""dialer/s3.py's Signature V4 against botocore's own signer (the AWS SDK's), for the requests it makes."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import httpx
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from dialer.s3 import EMPTY_SHA256, S3Client, S3Config, sign

CONFIG = S3Config(
    "http://127.0.0.1:9000", "recs", "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "eu-west-2"
)
NOW = datetime(2026, 12, 3, 10, 20, 30, tzinfo=UTC)


def botocore_authorization(method: str, url: str, payload_sha256: str) -> str:
    """botocore's Authorization header for the request at NOW (its add_auth reads the clock itself,
    so its steps are run here with the time set: canonical request, string to sign, signature)."""
    stamp = NOW.strftime("%Y%m%dT%H%M%SZ")
    request = AWSRequest(
        method=method, url=url, headers={"x-amz-content-sha256": payload_sha256, "X-Amz-Date": stamp}
    )
    request.context["timestamp"] = stamp
    signer = S3SigV4Auth(Credentials(CONFIG.access_key, CONFIG.secret_key), "s3", CONFIG.region)
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    scope = signer.scope(request)
    signed = signer.signed_headers(signer.headers_to_sign(request))
    return f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders={signed}, Signature={signature}"


@pytest.mark.parametrize(
    ("method", "key", "payload"),
    [
        ("PUT", "recordings/5f1c/0a9e.wav", b"RIFF" + bytes(1000)),
        ("GET", "recordings/5f1c/0a9e.wav", b""),
        ("DELETE", "recordings/5f1c/0a9e.wav", b""),
        ("PUT", "", b""),  # the bucket itself
    ],
)
def test_signature_matches_botocore(method: str, key: str, payload: bytes) -> None:
    url = S3Client(CONFIG).url(key)
    sha = hashlib.sha256(payload).hexdigest()
    ours = sign(CONFIG, method, url, sha, NOW)
    assert ours["Authorization"] == botocore_authorization(method, str(url), sha)
    assert ours["x-amz-date"] == "20261203T102030Z" and ours["x-amz-content-sha256"] == sha


def test_signature_covers_a_query_and_a_port() -> None:
    url = httpx.URL("http://127.0.0.1:9000/recs/a%20b.wav?versionId=3&acl=")
    ours = sign(CONFIG, "GET", url, EMPTY_SHA256, NOW)
    assert ours["Authorization"] == botocore_authorization("GET", str(url), EMPTY_SHA256)


def test_locations_name_the_bucket() -> None:
    client = S3Client(CONFIG)
    assert client.location("recordings/t/c.wav") == "s3://recs/recordings/t/c.wav"
    assert client.key_of("s3://recs/recordings/t/c.wav") == "recordings/t/c.wav"
    assert client.key_of("s3://other/recordings/t/c.wav") is None
