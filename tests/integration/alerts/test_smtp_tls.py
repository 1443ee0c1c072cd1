"""E-mail over STARTTLS and implicit TLS with AUTH, against a real aiosmtpd server whose
certificate (made by openssl for 127.0.0.1) is trusted through ``smtp.ca_file``."""

from __future__ import annotations

import shutil
import ssl
import subprocess

import pytest

from alerts.runtime import build_dispatcher
from newsalert.localservers import SmtpSink
from newsalert.settings import load_settings
from tests.conftest import sample_spike

pytestmark = [
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl"),
    # aiosmtpd warns about AUTH without STARTTLS even when the whole session is TLS.
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS"),
]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return cert, context


async def deliver_email(tmp_path, smtp, **smtp_settings):
    settings = load_settings(
        None,
        data_dir=tmp_path,
        alert_group_wait_seconds=0,
        subscriptions=[{"name": "desk", "topics": ["5g-security"], "email": "r@example.org"}],
        smtp={"host": "127.0.0.1", "port": smtp.port, **smtp_settings},
    )
    dispatcher = build_dispatcher(settings)
    try:
        await dispatcher.accept(sample_spike())
        await dispatcher.deliver_due()
        return dispatcher.store.messages()[0]
    finally:
        await dispatcher.close()


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "implicit-tls"])
async def test_tls_with_auth_delivers(tmp_path, certificate, implicit):
    cert, context = certificate
    smtp = SmtpSink(tls=context, implicit_tls=implicit, credentials=("alerts", "s3cret"))
    await smtp.start()
    try:
        row = await deliver_email(
            tmp_path,
            smtp,
            security="tls" if implicit else "starttls",
            ca_file=str(cert),
            username="alerts",
            password="s3cret",
        )
    finally:
        await smtp.stop()
    assert row.status == "delivered", row.last_error
    assert len(smtp.messages) == 1


async def test_wrong_password_is_not_delivered(tmp_path, certificate):
    cert, context = certificate
    smtp = SmtpSink(tls=context, credentials=("alerts", "s3cret"))
    await smtp.start()
    try:
        row = await deliver_email(
            tmp_path,
            smtp,
            security="starttls",
            ca_file=str(cert),
            username="alerts",
            password="wrong",
        )
    finally:
        await smtp.stop()
    assert row.status != "delivered" and "535" in row.last_error
    assert smtp.messages == []


async def test_an_untrusted_certificate_is_refused(tmp_path, certificate):
    _, context = certificate
    smtp = SmtpSink(tls=context)
    await smtp.start()
    try:
        row = await deliver_email(tmp_path, smtp, security="starttls")
    finally:
        await smtp.stop()
    assert row.status == "pending" and "certificate" in row.last_error.lower()
    assert smtp.messages == []
