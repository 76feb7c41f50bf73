"""The store over TLS with a password, as ``cluster/redis.yaml`` says to run it where the
cluster offers certificates: ``rediss://`` in the Secret's URL is all the gateway needs.

A real redis-server listens on TLS only, with a certificate from a throwaway CA and
``requirepass``; the store reaches it with the CA named in the URL, and neither a plain
connection nor a wrong password gets in (their errors do not carry the password).
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from serve_app.errors import StoreUnavailableError
from serve_app.store.redis_backend import RedisStore
from tests.conftest import free_port

pytestmark = pytest.mark.redis
PASSWORD = "s3cret-pass"


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, ec.EllipticCurvePrivateKey]
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer[0]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if subject == issuer[0]:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    else:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(san, False)
    return builder.sign(issuer[1], hashes.SHA256())


def write_certificates(where: Path) -> dict[str, Path]:
    """A CA, and a server certificate for 127.0.0.1 that it signed, as PEM files."""
    ca_key, server_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = _certificate("test-ca", ca_key, ("test-ca", ca_key))
    server = _certificate("127.0.0.1", server_key, ("test-ca", ca_key))
    files = {"ca": where / "ca.crt", "cert": where / "redis.crt", "key": where / "redis.key"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """A redis-server on TLS only (no plain port), with a password: its port and CA."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: run `make test`, which installs it")
    where = tmp_path_factory.mktemp("redis-tls")
    files = write_certificates(where)
    port = free_port()
    tls = ["--tls-port", str(port), "--tls-auth-clients", "no"]
    tls += ["--tls-cert-file", str(files["cert"]), "--tls-key-file", str(files["key"])]
    tls += ["--tls-ca-cert-file", str(files["ca"])]
    rest = ["--requirepass", PASSWORD, "--save", "", "--dir", str(where)]
    process = subprocess.Popen(
        [binary, "--port", "0", "--bind", "127.0.0.1", *tls, *rest],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_tls(port, files["ca"], process)
        yield port, files["ca"]
    finally:
        process.kill()
        process.wait(timeout=10)


def _wait_for_tls(port: int, ca: Path, process: subprocess.Popen[bytes]) -> None:
    context = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as raw:
                context.wrap_socket(raw, server_hostname="127.0.0.1").close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server with TLS did not start") from None
            time.sleep(0.05)


async def test_the_store_works_over_tls_with_the_password(tls_redis: tuple[int, Path]) -> None:
    port, ca = tls_redis
    store = RedisStore(f"rediss://:{PASSWORD}@127.0.0.1:{port}/0?ssl_ca_certs={ca}")
    try:
        assert await store.ping() is True
        assert await store.add_counters("usage:acme:2026-12-02", {"calls": 2.0}, 60.0)
        assert await store.read_counters("usage:acme:2026-12-02") == {"calls": 2.0}
    finally:
        await store.close()


@pytest.mark.parametrize(
    "url",
    [
        "redis://:{password}@127.0.0.1:{port}/0",  # plain text to a TLS port
        "rediss://:wrong-{password}@127.0.0.1:{port}/0?ssl_ca_certs={ca}",
        "rediss://:{password}@127.0.0.1:{port}/0",  # a certificate nobody vouched for
    ],
)
async def test_without_tls_the_password_or_a_trusted_certificate_nothing_gets_in(
    tls_redis: tuple[int, Path], url: str
) -> None:
    port, ca = tls_redis
    store = RedisStore(url.format(password=PASSWORD, port=port, ca=ca))
    try:
        with pytest.raises(StoreUnavailableError) as refused:
            await store.read_counters("usage:acme:2026-12-02")
        assert PASSWORD not in str(refused.value)
        assert PASSWORD not in repr(refused.value.to_json())
    finally:
        await store.close()
