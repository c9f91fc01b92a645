"""Issue 15: every input error is a domain error.  A CertificateInstallationReq whose
header Signature carries an empty KeyInfo/X509Data decodes (EXI lets the element end
at once) but cannot be encoded again; the station must still answer it FAILED (or close
cleanly) with one log line and no traceback."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pytest

from hal.backends.simulated import build_board
from secc import codec
from secc.aio.backends import LocalBackend
from secc.cli.ev import load_credentials
from secc.codec._generated import xmldsig
from secc.config import AuthorizationSection
from secc.core.events import Schema
from secc.ev.iso2 import EvSimulator, Outgoing
from secc.runtime import Station
from secc.v2gtp import encode_frame
from tests.security.peers import exchange, tls_client
from tests.station.conftest import EVSE_ID, evse, run, script, station_config


def encode_with_empty_x509data(message: Any) -> bytes:
    """Encode ``message`` writing every empty X509Data as EXI does for an element that
    ends at once (the escape code, then the second-level EE): what a hostile or broken
    EV can send.  The codec refuses to write it, so this test writes those bits itself."""
    original = xmldsig._e_X509Data

    def write(w: Any, value: Any) -> None:
        if value == xmldsig.X509Data():
            w.bits(6, 3)  # the escape to second-level events in X509Data's first state
            w.bits(0, 3)  # second-level EE
            return
        original(w, value)

    xmldsig._e_X509Data = write
    try:
        return codec.encode(message)
    finally:
        xmldsig._e_X509Data = original


def _with_empty_key_info(message: Any) -> Any:
    header = message.header
    key_info = xmldsig.KeyInfo(x509_data=(xmldsig.X509Data(),))
    signature = dataclasses.replace(header.signature, key_info=key_info)
    return dataclasses.replace(message, header=dataclasses.replace(header, signature=signature))


def test_certificate_installation_with_empty_key_info(
    pki_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    board, _plant = build_board()
    answers: list[Any] = []

    def backend(section: Any, emit: Any) -> LocalBackend:
        return LocalBackend(AuthorizationSection(), emit, certificates=lambda _request: None)

    async def main() -> None:
        config = station_config(pki_dir, None, evse())
        async with Station(config, boards={EVSE_ID: board}, backend_factory=backend) as st:
            e = st.evse(EVSE_ID)
            creds = load_credentials(pki_dir, dt.datetime.now(dt.UTC))
            ev = EvSimulator(
                script("ac", payment="Contract", credentials=creds, install_certificate=True)
            )
            ctx = tls_client(pki_dir / "v2g" / "root.pem")
            reader, writer = await asyncio.open_connection("::1", e.ports["tls"], ssl=ctx)
            step: Outgoing | None = ev.start()
            while step is not None and step.name != "CertificateInstallationReq":
                payload = await exchange(reader, writer, encode_frame(codec.encode(step.message)))
                assert payload is not None, f"closed after {step.name}"
                schema = Schema.APPHAND if step.schema is Schema.APPHAND else ev.schema
                step = ev.receive(codec.decode(payload, schema.value), schema)
            assert step is not None
            hostile = encode_with_empty_x509data(_with_empty_key_info(step.message))
            assert codec.decode(hostile, "iso2") is not None  # it does decode
            answer = await exchange(reader, writer, encode_frame(hostile))
            answers.append(None if answer is None else codec.decode(answer, "iso2"))
            writer.close()

    with caplog.at_level(logging.INFO):
        run(main)
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    (answer,) = answers
    assert answer is not None, "no answer"
    body = answer.body.body_element
    assert type(body).__name__ == "CertificateInstallationRes"
    assert body.response_code.value.startswith("FAILED")
