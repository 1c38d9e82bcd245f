"""`dronedispatch serve --tls-cert/--tls-key`: HTTPS and WSS on 127.0.0.1 with a self-signed certificate."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.fixtures.services import free_tcp_port, free_udp_port

DD = [sys.executable, "-m", "dronedispatch.cli"]
PASSWORD = "tls-test-password"


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


def test_serve_over_https_and_wss(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    port = free_tcp_port()
    env = {
        **os.environ,
        "DD_DATABASE_URL": f"sqlite:///{tmp_path / 'dd.db'}",
        "DD_MAVLINK": f"udpin:127.0.0.1:{free_udp_port()}",
        "DD_SECRET_KEY": "tls-secret-key-tls-secret-key-tls-secret",
    }
    # a certificate without its key is refused before the service starts; checked alongside the start below,
    # since each command line costs a process start
    half = subprocess.Popen([*DD, "serve", "--tls-cert", str(cert)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    added = subprocess.run([*DD, "users", "add", "admin", "--role", "admin"], input=f"{PASSWORD}\n".encode(),
                           env=env, capture_output=True, timeout=60)  # fmt: skip
    assert added.returncode == 0, added.stderr.decode()

    log = (tmp_path / "serve.log").open("wb")
    serve = subprocess.Popen([*DD, "serve", "--port", str(port), "--tls-cert", str(cert), "--tls-key", str(key)],
                             env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        _, half_err = half.communicate(timeout=60)
        assert half.returncode == 2 and b"go together" in half_err, half_err.decode()
        base = f"https://127.0.0.1:{port}"
        trust = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(base_url=base, verify=trust, timeout=5) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    health = http.get("/healthz")
                    break
                except httpx.TransportError:
                    assert serve.poll() is None, (tmp_path / "serve.log").read_text()
                    assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                    time.sleep(0.3)
            assert health.status_code == 200 and health.json()["status"] == "ok"
            assert "max-age" in health.headers["Strict-Transport-Security"]
            assert "frame-ancestors 'none'" in health.headers["Content-Security-Policy"]
            token = http.post("/api/v1/auth/token", data={"username": "admin", "password": PASSWORD}).json()
            bearer = {"Authorization": f"Bearer {token['access_token']}"}
            ticket = http.post("/api/v1/auth/ws-ticket", headers=bearer).json()["ticket"]
        with httpx.Client(verify=False) as plain, httpx.Client() as untrusting:
            try:
                plain.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
                raise AssertionError("plain HTTP answered on the TLS port")
            except httpx.TransportError:
                pass
            try:
                untrusting.get(f"{base}/healthz", timeout=5)
                raise AssertionError("a client that does not trust the certificate connected")
            except httpx.ConnectError:
                pass

        async def snapshot() -> dict[str, object]:
            async with websockets.connect(f"wss://127.0.0.1:{port}/api/v1/events?token={ticket}", ssl=trust,
                                          max_size=None) as ws:  # fmt: skip
                return json.loads(await asyncio.wait_for(ws.recv(), 30))  # type: ignore[no-any-return]

        snap = asyncio.run(snapshot())
        assert snap["type"] == "snapshot" and snap["user"] == "admin"
    finally:
        if half.poll() is None:
            half.kill()
            half.wait()
        serve.terminate()
        try:
            serve.wait(20)
        except subprocess.TimeoutExpired:
            serve.kill()
        log.close()
