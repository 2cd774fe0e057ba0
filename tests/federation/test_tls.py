"""HTTPS between peers: the delivery client verifies the peer's certificate against the configured CA."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import DatabaseFactory, free_port, make_settings, start_node

from .test_channel import send, worker


def _pki(tmp: Path) -> tuple[Path, Path, Path]:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cyberpact test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


def test_delivery_over_https_verifies_the_peer_certificate(
    db_factory: DatabaseFactory, tmp_path: Path
) -> None:
    ca, cert, key = _pki(tmp_path)
    port_b = free_port()
    b = start_node(
        make_settings(
            db_factory(), tmp_path / "b", node_id="au-24x7", base_url=f"https://127.0.0.1:{port_b}"
        ),
        port=port_b,
        ssl=(cert, key),
    )
    a = start_node(make_settings(db_factory(), tmp_path / "a", node_id="vn-24x7", tls_ca_bundle=ca))
    stranger = start_node(make_settings(db_factory(), tmp_path / "c", node_id="xx-untrusting"))
    try:
        b.verify = str(ca)
        b.admin_token = b.user("admin-b", "admin")
        a.admin_token = a.user("admin-a", "admin", "officer")
        stranger.admin_token = stranger.user("admin-c", "admin")
        fp = b.client(b.admin_token).get("/api/v1/federation/node").json()["fingerprint"]
        assert b.url.startswith("https://")

        # Without the CA bundle the certificate is not trusted, so the card is never even read.
        r = stranger.client(stranger.admin_token).post(
            "/api/v1/federation/peers", json={"url": b.url, "fingerprint": fp}
        )
        assert r.status_code == 422 and "CERTIFICATE_VERIFY_FAILED" in r.json()["detail"]

        r = a.client(a.admin_token).post("/api/v1/federation/peers", json={"url": b.url, "fingerprint": fp})
        assert r.status_code == 201, r.text
        # b must trust a to accept its messages; a's card URL is plain loopback HTTP in this test.
        fp_a = a.client(a.admin_token).get("/api/v1/federation/node").json()["fingerprint"]
        assert (
            b.client(b.admin_token)
            .post("/api/v1/federation/peers", json={"url": a.url, "fingerprint": fp_a})
            .status_code
            == 201
        )
        send(a, "au-24x7", "over TLS")
        assert worker(a).run_once().delivered == 1
    finally:
        for n in (a, b, stranger):
            n.stop()


def test_prod_serves_https_only(cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside dev `cyberpact serve` will not start without a certificate and its key, and never on a
    plain-http base URL: TLS is the second wall, and it is not optional."""
    from typer.testing import CliRunner

    from cyberpact.cli import app

    monkeypatch.setenv("CYBERPACT_ENV", "prod")
    monkeypatch.setenv("CYBERPACT_SECRET_KEY", "s" * 40)
    monkeypatch.setenv("CYBERPACT_BASE_URL", "https://node.example.org")
    runner = CliRunner()
    r = runner.invoke(app, ["serve"])
    assert r.exit_code == 1 and "HTTPS only" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["serve", "--cert", "cert.pem"])
    assert r.exit_code == 1 and "both a TLS certificate and its key" in r.output
    monkeypatch.setenv("CYBERPACT_BASE_URL", "http://node.example.org")
    r = runner.invoke(app, ["serve", "--cert", "cert.pem", "--key", "key.pem"])
    assert r.exit_code == 1 and "https://" in r.output
