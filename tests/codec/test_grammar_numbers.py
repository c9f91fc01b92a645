"""The sanity numbers of EXI-NOTES §3/§4, checked on the generated grammars and on the
bits the encoder writes."""

from __future__ import annotations

from secc import codec


def _bits(data: bytes) -> str:
    return "".join(f"{b:08b}" for b in data)


def test_iso2_document_and_fragment_numbers() -> None:
    iso2 = codec.schema_module("iso2")
    assert len(iso2.DOCUMENT) == 80  # global elements, abstract ones included
    names = [r.local for r in iso2.DOCUMENT]
    assert names.index("V2G_Message") == 76
    assert len(iso2.FRAGMENT) == 243  # unique element qnames
    assert len(iso2.FRAGMENT_ATTRIBUTES) == 10
    assert iso2.FRAGMENT_ATTRIBUTES[4] == ("urn:iso:15118:2:2013:MsgDataTypes", "Id")


def test_other_schema_numbers() -> None:
    din = codec.schema_module("din")
    assert len(din.DOCUMENT) == 81
    assert [r.local for r in din.DOCUMENT].index("V2G_Message") == 77
    assert len(din.FRAGMENT) == 245
    app = codec.schema_module("apphand")
    assert [r.local for r in app.DOCUMENT] == ["supportedAppProtocolReq", "supportedAppProtocolRes"]
    ds = codec.schema_module("xmldsig")
    assert len(ds.DOCUMENT) == 24
    assert len(ds.FRAGMENT) == 45
    assert [r.local for r in ds.FRAGMENT].index("SignedInfo") == 32


def test_body_codes_in_six_bits() -> None:
    iso2 = codec.schema_module("iso2")
    width, _ee2, row = iso2._DT_Body[0]
    assert width == 6
    (body_field,) = iso2.FIELDS[iso2.Body]
    members = [local for _ns, local, _t in body_field.tinfo[1]]
    assert len(members) == 35  # BodyElement (abstract head) + 34 messages
    assert members.index("SessionSetupReq") == 29
    assert members.index("CurrentDemandReq") == 13
    assert row[29][:2] == (0, 29) and row[13][:2] == (0, 13)


def test_encoded_bits_follow_the_worked_example() -> None:
    """EXI-NOTES §4: header 0x80, V2G_Message = 76 in 7 bits, ..., Body code 13 in 6 bits."""
    iso2 = codec.schema_module("iso2")
    pv = iso2.PhysicalValue
    msg = iso2.V2G_Message(
        header=iso2.MessageHeader(session_id=bytes(8)),
        body=iso2.Body(
            body_element=iso2.CurrentDemandReq(
                dc_ev_status=iso2.DC_EVStatus(
                    ev_ready=True, ev_error_code=iso2.DC_EVErrorCode.NO_ERROR, evresssoc=50
                ),
                ev_target_current=pv(multiplier=0, unit=iso2.UnitSymbol.A, value=10),
                charging_complete=False,
                ev_target_voltage=pv(multiplier=0, unit=iso2.UnitSymbol.V, value=400),
            )
        ),
    )
    bits = _bits(codec.encode(msg))
    assert bits[:8] == "10000000"
    assert int(bits[8:15], 2) == 76
    # SE(Header) 1, SE(SessionID) 1, CH 1, length 8 (8 bits), 64 bits, EE 1, EE(header) 2
    pos = 15 + 1 + 1 + 1
    assert int(bits[pos : pos + 8], 2) == 8
    pos += 8 + 64 + 1
    assert int(bits[pos : pos + 2], 2) == 2  # {Notification, Signature, EE}: EE
    pos += 2 + 1  # SE(Body)
    assert int(bits[pos : pos + 6], 2) == 13
    assert codec.decode(codec.encode(msg), "iso2") == msg


def test_x509_serial_number_of_twenty_octets_roundtrips() -> None:
    """X509SerialNumber is xs:integer: serials up to 20 octets (160 bits) must pass."""
    ds = codec.schema_module("xmldsig")
    for serial in (2**159 + 12345, -(2**159), (1 << 160) - 1):
        value = ds.X509IssuerSerial(x509_issuer_name="CN=V2G Root", x509_serial_number=serial)
        data = codec.encode_fragment(value, name="X509IssuerSerial")
        _root, back = codec.decode_fragment(data, "xmldsig")
        assert back == value
