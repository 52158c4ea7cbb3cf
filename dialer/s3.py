"""A small S3 client over httpx: PUT, streaming GET and DELETE of objects, signed with AWS Signature V4.

Enough for recordings (docs/recordings.md) on AWS S3 or any S3-compatible store (MinIO, Ceph, R2, ...):
path-style URLs (``{endpoint}/{bucket}/{key}``), the payload's SHA-256 signed (no ``UNSIGNED-PAYLOAD``),
no multipart upload (one PUT holds up to 5 GB; an hour of recording is 58 MB). The signature follows
https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html and is checked against
botocore's signer in tests/unit/test_s3.py.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import httpx

CHUNK = 64 * 1024
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class S3Error(Exception):
    """The store refused or could not be reached; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"S3 {status}: {message}" if status else f"S3 unreachable: {message}")
        self.status = status


@dataclass(frozen=True)
class S3Config:
    """Where objects go: ``endpoint`` like ``https://s3.eu-west-1.amazonaws.com`` or ``http://minio:9000``."""

    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sign(config: S3Config, method: str, url: httpx.URL, payload_sha256: str, now: datetime) -> dict[str, str]:
    """The headers that authenticate one request (``Authorization``, ``x-amz-date``,
    ``x-amz-content-sha256``); the request must carry them and the URL's host unchanged."""
    amz_date = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    host = url.netloc.decode()
    headers = {"host": host, "x-amz-content-sha256": payload_sha256, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canonical_headers = "".join(f"{name}:{headers[name].strip()}\n" for name in sorted(headers))
    query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(url.params.multi_items())
    )
    canonical = "\n".join(
        [method, url.raw_path.split(b"?")[0].decode(), query, canonical_headers, signed, payload_sha256]
    )
    scope = f"{day}/{config.region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(
        _hmac(_hmac(_hmac(f"AWS4{config.secret_key}".encode(), day), config.region), "s3"), "aws4_request"
    )
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    credential = f"{config.access_key}/{scope}"
    authorization = f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders={signed}, Signature={signature}"
    return {"Authorization": authorization, "x-amz-date": amz_date, "x-amz-content-sha256": payload_sha256}


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        while chunk := data.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as data:
        while chunk := data.read(CHUNK):
            yield chunk


class S3Client:
    """Objects of one bucket. Blocking calls (``put_file``, ``delete``, ``create_bucket``) run in a
    thread of the caller's choosing; ``stream`` is async, for the API's download route."""

    def __init__(self, config: S3Config, timeout: float = 30.0) -> None:
        self.config = config
        self.timeout = timeout

    def url(self, key: str = "") -> httpx.URL:
        path = f"/{quote(self.config.bucket, safe='')}" + (f"/{quote(key, safe='/-_.~')}" if key else "")
        return httpx.URL(self.config.endpoint.rstrip("/") + path)

    def location(self, key: str) -> str:
        """How a stored object is named in our records."""
        return f"s3://{self.config.bucket}/{key}"

    def key_of(self, location: str) -> str | None:
        """The key of a ``location`` in this bucket, else None."""
        prefix = f"s3://{self.config.bucket}/"
        return location[len(prefix) :] if location.startswith(prefix) else None

    def _send(self, method: str, url: httpx.URL, sha: str, **kwargs: object) -> httpx.Response:
        headers = sign(self.config, method, url, sha, datetime.now(UTC)) | dict(kwargs.pop("headers", {}))  # type: ignore[call-overload]
        try:
            with httpx.Client(timeout=self.timeout, trust_env=False) as client:
                response = client.request(method, url, headers=headers, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            raise S3Error(0, type(exc).__name__) from exc
        if response.status_code >= 300:
            raise S3Error(response.status_code, _code(response.text))
        return response

    def create_bucket(self) -> None:
        """Make the bucket (deployments usually make it themselves; tests do it here)."""
        self._send("PUT", self.url(), EMPTY_SHA256)

    def put_file(self, key: str, path: Path, content_type: str = "audio/wav") -> None:
        size = path.stat().st_size
        headers = {"Content-Type": content_type, "Content-Length": str(size)}
        self._send("PUT", self.url(key), _file_sha256(path), content=_chunks(path), headers=headers)

    def delete(self, key: str) -> None:
        """Delete an object; deleting one that is not there is no error (S3 answers 204 either way)."""
        self._send("DELETE", self.url(key), EMPTY_SHA256)

    async def stream(self, key: str) -> AsyncIterator[bytes]:
        """The object's bytes as they arrive; S3Error (404 when missing) before the first chunk."""
        url = self.url(key)
        headers = sign(self.config, "GET", url, EMPTY_SHA256, datetime.now(UTC))
        async with httpx.AsyncClient(timeout=self.timeout, trust_env=False) as client:
            try:
                async with client.stream("GET", url, headers=headers) as response:
                    if response.status_code >= 300:
                        raise S3Error(
                            response.status_code, _code((await response.aread()).decode(errors="replace"))
                        )
                    async for chunk in response.aiter_bytes(CHUNK):
                        yield chunk
            except httpx.HTTPError as exc:
                raise S3Error(0, type(exc).__name__) from exc


def _code(body: str) -> str:
    """The ``<Code>`` of an S3 XML error (never the whole body: it can echo the key)."""
    start, end = body.find("<Code>"), body.find("</Code>")
    return body[start + 6 : end] if 0 <= start < end else "error"
