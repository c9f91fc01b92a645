"""XML / JSON views of decoded values (secc.codec.xml) and the ``secc exi`` command.

Every valid document vector goes decode -> XML -> encode and decode -> JSON -> encode
through the CLI's main() and comes back byte for byte; fragments do the same through the
library; bad input of every kind gives one clear line and the documented exit code.
"""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from secc import codec
from secc.cli import exi as exi_cli
from secc.cli import selfcheck
from secc.codec import xml as cx
from secc.codec.exi.runtime import EmptyBytes

from .vectors import CODEC_SCHEMA, REPO, require_vectors, vectors

DOCUMENT_SCHEMAS = ("iso2", "din", "appHandshake")
FRAGMENT_SCHEMAS = ("iso2-fragment", "xmldsig-fragment")
SECC = REPO / ".venv" / "bin" / "secc"
ISO_D = "urn:iso:15118:2:2013:MsgDef"
ISO_B = "urn:iso:15118:2:2013:MsgBody"
ISO_T = "urn:iso:15118:2:2013:MsgDataTypes"
DSIG = "http://www.w3.org/2000/09/xmldsig#"


def _same_stream(original: bytes, encoded: bytes) -> bool:
    # a Tesla appends a 00 after the padding; the canonical stream is one byte shorter
    return original[: len(encoded)] == encoded and not original[len(encoded) :].strip(b"\0")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = exi_cli.main(list(argv), prog="secc exi")
    out, err = capsys.readouterr()
    return rc, out, err


def _vector(name_part: str, schema: str = "iso2") -> dict[str, Any]:
    for v in require_vectors():
        if v["valid"] and v["schema"] == schema and name_part in v["name"]:
            return v
    raise AssertionError(f"no vector {name_part}")


def _cdreq_hex() -> str:
    return str(_vector("CurrentDemandReq")["exi_hex"])


# ------------------------------------------------------------- round trips, whole corpus


@pytest.mark.parametrize("v", vectors(*DOCUMENT_SCHEMAS))
def test_cli_decode_encode_gives_the_same_bytes(
    v: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schema = CODEC_SCHEMA[v["schema"]]
    data = bytes.fromhex(v["exi_hex"])
    for extra, suffix in (((), "xml"), (("--json",), "json")):
        rc, out, err = _run(capsys, "decode", "--schema", schema, *extra, v["exi_hex"])
        assert rc == 0, err
        path = tmp_path / f"m.{suffix}"
        path.write_text(out, encoding="utf-8")
        rc, out, err = _run(capsys, "encode", "--schema", schema, str(path))
        assert rc == 0, err
        assert _same_stream(data, bytes.fromhex(out.strip())), suffix


@pytest.mark.parametrize("v", vectors(*FRAGMENT_SCHEMAS))
def test_fragment_xml_and_json_roundtrip(v: dict[str, Any]) -> None:
    schema = CODEC_SCHEMA[v["schema"]]
    data = bytes.fromhex(v["exi_hex"])
    root, value = codec.decode_fragment(data, schema)
    name = f"{{{root.ns}}}{root.local}"
    text = cx.to_xml(value, root=root, schema=schema)
    root2, back = cx.from_xml(text, schema, fragment=True)
    assert root2 == root and back == value
    assert codec.encode_fragment(back, schema, name=name) == data
    obj = json.loads(json.dumps(cx.to_json(value, root=root, schema=schema)))
    root3, back3 = cx.from_json(obj, schema, fragment=True)
    assert root3 == root and codec.encode_fragment(back3, schema, name=name) == data


def test_corpus_count_through_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    found = [v for v in require_vectors() if v["valid"] and v["schema"] in DOCUMENT_SCHEMAS]
    assert len(found) == 129 + 109 + 13


# ------------------------------------------------------------------- the XML form


def test_xml_is_namespaced_with_fixed_prefixes_and_lexical_forms() -> None:
    v = _vector("signedSalesTariff_V2Gdecoder")
    root, msg = codec.decode_document(bytes.fromhex(v["exi_hex"]), "iso2")
    text = cx.to_xml(msg, root=root)
    assert text.startswith("<v2gci_d:V2G_Message ")
    el = etree.fromstring(text.encode())
    assert el.nsmap["v2gci_d"] == ISO_D and el.nsmap["xmlsig"] == DSIG
    # ISO-2 attributes are qualified, xmldsig ones are not
    tariff = el.find(f".//{{{ISO_T}}}SalesTariff")
    assert tariff is not None and tariff.get(f"{{{ISO_T}}}Id") == "id1"
    assert 'v2gci_t:Id="id1"' in text
    ref = el.find(f".//{{{DSIG}}}Reference")
    assert ref is not None and ref.get("URI") == "#id1"
    # hexBinary uppercase, base64Binary as base64, enumerations by value
    sid = el.find(".//{urn:iso:15118:2:2013:MsgHeader}SessionID")
    assert sid is not None and sid.text == msg.header.session_id.hex().upper()
    digest = el.find(f".//{{{DSIG}}}DigestValue")
    assert digest is not None and digest.text == "stU7nW+JVCDxgXi4tMdOJo812VftYJwTeJ3TUEqZZBU="
    assert "<v2gci_b:ResponseCode>OK</v2gci_b:ResponseCode>" in text
    # pretty-printed exactly as lxml writes it
    assert text == etree.tostring(el, pretty_print=True, encoding="unicode")


def test_booleans_are_true_false() -> None:
    text = cx.to_xml(codec.decode(bytes.fromhex(_cdreq_hex()), "iso2"))
    assert "<v2gci_t:EVReady>true</v2gci_t:EVReady>" in text
    assert "<v2gci_b:ChargingComplete>false</v2gci_b:ChargingComplete>" in text


def test_din_and_apphand_prefixes(capsys: pytest.CaptureFixture[str]) -> None:
    din = _vector("SessionSetupReq", "din")
    rc, out, _ = _run(capsys, "decode", "--schema", "din", din["exi_hex"])
    assert rc == 0 and out.startswith("<v2gdin_d:V2G_Message ")
    app = _vector("", "appHandshake")
    rc, out, _ = _run(capsys, "decode", "--schema", "apphand", app["exi_hex"])
    assert rc == 0 and out.startswith("<v2gapp:supportedAppProtocol")
    # appHandshake children are unqualified: no default namespace may capture them
    assert "<AppProtocol>" in out or "<ResponseCode>" in out


def test_second_level_ee_empty_value_survives_xml_and_json() -> None:
    v = _vector("signedSalesTariff_V2Gdecoder")
    data = bytes.fromhex(v["exi_hex"])
    root, msg = codec.decode_document(data, "iso2")
    assert type(msg.header.signature.signature_value.value) is EmptyBytes
    text = cx.to_xml(msg, root=root)
    assert "<?secc-exi empty-ee?>" in text
    _, back = cx.from_xml(text, "iso2")
    assert type(back.header.signature.signature_value.value) is EmptyBytes
    assert codec.encode(back) == data
    obj = cx.to_json(msg, root=root)
    sv = obj["V2G_Message"]["Header"]["Signature"]["SignatureValue"]
    assert sv == {"#text": None}
    _, back = cx.from_json(json.loads(json.dumps(obj)), "iso2")
    assert codec.encode(back) == data


def test_empty_element_reads_back_as_plain_empty() -> None:
    v = _vector("SessionSetupReq_pyPLCtest", "din")
    data = bytes.fromhex(v["exi_hex"])
    msg = codec.decode(data, "din")
    assert msg.header.session_id == b"" and type(msg.header.session_id) is bytes
    text = cx.to_xml(msg)
    empty = "<v2gdin_h:SessionID></v2gdin_h:SessionID>"
    assert empty in text
    _, back = cx.from_xml(text, "din")
    assert type(back.header.session_id) is bytes and codec.encode(back) == data
    # <a></a> and <a/> are the same to XML: both read back as CH("")
    _, back = cx.from_xml(text.replace(empty, "<v2gdin_h:SessionID/>"), "din")
    assert codec.encode(back) == data


def test_xml_accepts_comments_lowercase_hex_and_unqualified_attributes() -> None:
    v = _vector("signedSalesTariff_V2Gdecoder")
    root, msg = codec.decode_document(bytes.fromhex(v["exi_hex"]), "iso2")
    text = cx.to_xml(msg, root=root)
    sid = msg.header.session_id.hex().upper()
    edited = text.replace(sid, sid.lower()).replace('v2gci_t:Id="id1"', 'Id="id1"')
    edited = edited.replace("<v2gci_d:Body>", "<v2gci_d:Body><!-- a lab note -->")
    _, back = cx.from_xml(edited, "iso2")
    assert back == msg


def test_strings_without_an_xml_form_are_refused_but_json_carries_them() -> None:
    mod = codec.schema_module("iso2")
    msg = _vector("SessionSetupRes")
    value = codec.decode(bytes.fromhex(msg["exi_hex"]), "iso2")
    body = mod.SessionSetupRes(response_code=mod.ResponseCode.OK, evseid="DE*A\x01\u00e9\U0001f50c")
    bad = mod.V2G_Message(header=value.header, body=mod.Body(body_element=body))
    with pytest.raises(cx.XmlError, match=r"U\+0001 .*EVSEID"):
        cx.to_xml(bad)
    obj = json.loads(json.dumps(cx.to_json(bad)))
    assert cx.from_json(obj, "iso2")[1] == bad


@pytest.mark.parametrize(
    "text", ["a\rb", "a\r\nb", " x  y ", "<&>\"'", "\t", "\u00a0", "]]>", "\u4e2d\U0001f50c", ""]
)
def test_string_edge_cases_survive_xml(text: str) -> None:
    mod = codec.schema_module("iso2")
    res = mod.SessionSetupRes(response_code=mod.ResponseCode.OK, evseid=text)
    assert cx.from_xml(cx.to_xml(res, fragment=True), "iso2", fragment=True)[1] == res
    param = mod.Parameter(name=text, string_value=text)  # also as an attribute value
    assert cx.from_xml(cx.to_xml(param, fragment=True), "iso2", fragment=True)[1] == param


# ------------------------------------------------------------- clear errors for bad XML


@cache
def _xml_of_cdreq() -> str:
    return cx.to_xml(codec.decode(bytes.fromhex(_cdreq_hex()), "iso2"))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ("<v2gci_t:EVRESSSOC>50<", "<v2gci_t:EVRESSSOC>500<"),
            r"500 is outside 0\.\.100 at /V2G_Message/Body/CurrentDemandReq/DC_EVStatus/EVRESSSOC",
        ),
        (
            ("<v2gci_t:EVRESSSOC>50<", "<v2gci_t:EVRESSSOC>half<"),
            r"'half' is not an integer.* at /V2G_Message/Body/CurrentDemandReq/DC_EVStatus/EVRE",
        ),
        (("<v2gci_t:EVReady>true<", "<v2gci_t:EVReady>yes<"), r"not a boolean .*EVReady"),
        (
            ("<v2gci_t:Unit>A<", "<v2gci_t:Unit>mA<"),
            r"'mA' is not one of h, m, s, A, V, W, Wh at .*EVTargetCurrent/Unit",
        ),
        (
            ("1EFCB138A6DF3B3A", "1EFCB138A6DF3B3"),
            r"not valid hexBinary at /V2G_Message/Header/SessionID",
        ),
        (
            ("1EFCB138A6DF3B3A", "1EFCB138A6DF3B3A00"),
            r"9 octets, at most 8 allowed at /V2G_Message/Header/SessionID",
        ),
        (
            ("<v2gci_t:EVReady>true</v2gci_t:EVReady>", ""),
            r"required element v2gci_t:EVReady is missing at /V2G_Message/Body/CurrentDemandReq/",
        ),
        (
            ("<v2gci_t:EVReady>", "<v2gci_t:EVGo>1</v2gci_t:EVGo><v2gci_t:EVReady>"),
            r"unexpected element v2gci_t:EVGo \(not declared here\) at /V2G_Message/Body/Current",
        ),
        (
            ("<v2gci_b:ChargingComplete>", "<v2gci_b:ChargingComplete v2gci_b:Id='x'>"),
            r"unexpected attribute",
        ),
        (
            ("<v2gci_b:DC_EVStatus>", "<v2gci_b:DC_EVStatus v2gci_b:Id='x'>"),
            r"unknown attribute v2gci_b:Id at /V2G_Message/Body/CurrentDemandReq/DC_EVStatus",
        ),
        (("<v2gci_b:DC_EVStatus>", "<v2gci_b:DC_EVStatus>oops"), r"unexpected text in DC_EVStatus"),
        (
            ("</v2gci_d:Header>", "<v2gci_h:SessionID>00</v2gci_h:SessionID></v2gci_d:Header>"),
            r"out of order or repeated too often",
        ),
        (("</v2gci_d:V2G_Message>", ""), r"not well-formed XML"),
        (("<v2gci_d:Body>", "<v2gci_d:Body><?php echo 1?>"), r"unknown processing instruction"),
    ],
)
def test_bad_xml_names_the_path(edit: tuple[str, str], message: str) -> None:
    text = _xml_of_cdreq()
    assert edit[0] in text
    with pytest.raises(cx.XmlError, match=message):
        cx.from_xml(text.replace(edit[0], edit[1], 1), "iso2")


def test_wrong_root_and_entities_are_refused() -> None:
    with pytest.raises(cx.XmlError, match="is not a global element of the iso2 schema"):
        cx.from_xml("<v2gdin_d:V2G_Message xmlns:v2gdin_d='urn:din:70121:2012:MsgDef'/>", "iso2")
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE m [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        f"<v2gci_d:V2G_Message xmlns:v2gci_d='{ISO_D}'>&e;</v2gci_d:V2G_Message>"
    )
    with pytest.raises(cx.XmlError) as info:
        cx.from_xml(bomb, "iso2")
    assert "root:" not in str(info.value)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda m: m["Body"]["CurrentDemandReq"]["DC_EVStatus"].update(EVRESSSOC="50"),
            r"is not a JSON integer at /V2G_Message/Body/CurrentDemandReq/DC_EVStatus/EVRESSSOC",
        ),
        (
            lambda m: m["Body"]["CurrentDemandReq"]["DC_EVStatus"].update(EVReady=1),
            r"not a JSON boolean",
        ),
        (
            lambda m: m["Body"]["CurrentDemandReq"]["DC_EVStatus"].pop("EVReady"),
            r"required EVReady is missing at /V2G_Message/Body/CurrentDemandReq/DC_EVStatus",
        ),
        (
            lambda m: m["Body"]["CurrentDemandReq"].update(Extra=1),
            r"unknown key 'Extra' in CurrentDemandReq",
        ),
        (lambda m: m["Header"].update(SessionID=["00"]), r"not a list"),
        (lambda m: m["Header"].update(SessionID="zz"), r"not valid hexBinary"),
        (lambda m: m.update(Body="x"), r"expected a JSON object for Body, got str"),
        (
            lambda m: m["Body"]["CurrentDemandReq"]["DC_EVStatus"].update(EVRESSSOC=10**400),
            r"more than 100 digits",
        ),
    ],
)
def test_bad_json_names_the_path(edit: Any, message: str) -> None:
    obj = cx.to_json(codec.decode(bytes.fromhex(_cdreq_hex()), "iso2"))
    edit(obj["V2G_Message"])
    with pytest.raises(cx.XmlError, match=message):
        cx.from_json(obj, "iso2")
    with pytest.raises(cx.XmlError, match="exactly one key"):
        cx.from_json({"a": 1, "b": 2}, "iso2")
    with pytest.raises(cx.XmlError, match="is not a root element"):
        cx.from_json({"Nothing": {}}, "iso2")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_xml_gives_only_codec_errors(data: st.DataObject) -> None:
    text = _xml_of_cdreq()
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(text)))
        j = data.draw(st.integers(i, min(len(text), i + 12)))
        repl = data.draw(st.sampled_from(["", "<", ">", "x", "1", "-", "/", "&", "\u00e9", "<a/>"]))
        text = text[:i] + repl + text[j:]
    try:
        _, value = cx.from_xml(text, "iso2")
        codec.encode(value)
    except codec.CodecError:
        pass


# ---------------------------------------------------------------------- CLI forms


def test_v2gtp_header_file_forms_and_spaced_hex(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hexdata = _cdreq_hex()
    data = bytes.fromhex(hexdata)
    rc, reference, _ = _run(capsys, "decode", "--schema", "iso2", hexdata)
    assert rc == 0
    framed = b"\x01\xfe\x80\x01" + len(data).to_bytes(4, "big") + data
    spaced = " ".join(f"{b:02X}" for b in framed)
    assert _run(capsys, "decode", "--schema", "iso2", spaced)[:2] == (0, reference)
    assert _run(capsys, "decode", "--schema", "iso2", *spaced.split())[:2] == (0, reference)
    binary = tmp_path / "frame.bin"
    binary.write_bytes(framed)
    assert _run(capsys, "decode", "--schema", "iso2", f"@{binary}")[:2] == (0, reference)
    text = tmp_path / "frame.hex"
    text.write_text(spaced[:40] + "\n" + spaced[40:] + "\n")
    assert _run(capsys, "decode", "--schema", "iso2", f"@{text}")[:2] == (0, reference)
    exi = tmp_path / "body.exi"
    exi.write_bytes(data)
    assert _run(capsys, "decode", "--schema", "iso2", f"@{exi}")[:2] == (0, reference)


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["decode", "--schema", "iso2", "8098"], 1, "input ends inside"),
        (["decode", "--schema", "iso2", "81"], 1, "EXI header 0x81"),
        (["decode", "--schema", "iso2", "01fe900100000002aabb"], 1, "payload type 9001"),
        (
            ["decode", "--schema", "iso2", "01fe800100000010aabb"],
            1,
            "announces 16 octets, 2 follow",
        ),
        (["decode", "--schema", "iso2", "01fe80"], 1, "V2GTP header truncated"),
        (["decode", "--schema", "iso2", "80g0"], 2, "'g' is not a hex digit"),
        (["decode", "--schema", "iso2", "809"], 2, "odd number of hex digits"),
        (
            ["decode", "--schema", "iso2", "@/nonexistent/x.exi"],
            2,
            "cannot read /nonexistent/x.exi",
        ),
        (["decode", "--schema", "iso9", "80"], 2, "invalid choice"),
        (["decode", "80"], 2, "--schema"),
        (["encode", "--schema", "iso2"], 2, "FILE_OR_-"),
        (["frobnicate"], 2, "invalid choice"),
        ([], 2, "ACTION"),
    ],
)
def test_cli_errors(
    argv: list[str], code: int, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, err = _run(capsys, *argv)
    assert rc == code
    assert message in err and out == ""
    if code == 1:
        assert err.count("\n") == 1 and err.startswith("secc exi decode: ")


def test_cli_encode_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text(_xml_of_cdreq().replace("<v2gci_t:EVRESSSOC>50<", "<v2gci_t:EVRESSSOC>101<"))
    rc, out, err = _run(capsys, "encode", "--schema", "iso2", str(bad))
    assert (rc, out) == (1, "")
    assert err == (
        "secc exi encode: 101 is outside 0..100 at "
        "/V2G_Message/Body/CurrentDemandReq/DC_EVStatus/EVRESSSOC\n"
    )
    bad.write_text('{"V2G_Message": ')
    rc, _, err = _run(capsys, "encode", "--schema", "iso2", str(bad))
    assert rc == 1 and err.startswith("secc exi encode: not valid JSON") and err.count("\n") == 1
    # a value the XML form allows but the grammar does not: the encoder's error
    mod = codec.schema_module("iso2")
    param = mod.Parameter(name="p", bool_value=True)
    xml = cx.to_xml(param, name="Parameter", fragment=True)
    two = xml.replace(
        "</v2gci_t:Parameter>", "<v2gci_t:intValue>1</v2gci_t:intValue></v2gci_t:Parameter>"
    )
    _, value = cx.from_xml(two, "iso2", fragment=True)
    with pytest.raises(codec.EncodeError, match="intValue is not allowed here"):
        codec.encode_fragment(value, name="Parameter")


# ------------------------------------------------------------- as a real subprocess


def _secc(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    exe = [str(SECC)] if SECC.exists() else [sys.executable, "-m", "secc.cli.main"]
    return subprocess.run(
        [*exe, "exi", *argv], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def test_real_subprocess_round_trips() -> None:
    picks = [
        _vector("CurrentDemandReq"),
        _vector("SessionSetupReq", "din"),
        _vector("", "appHandshake"),
    ]
    picks.append(_vector("CertificateInstallationRes"))
    for v in picks:
        schema = CODEC_SCHEMA[v["schema"]]
        dec = _secc("decode", "--schema", schema, v["exi_hex"])
        assert dec.returncode == 0, dec.stderr
        enc = _secc("encode", "--schema", schema, "-", stdin=dec.stdout)
        assert enc.returncode == 0, enc.stderr
        assert enc.stdout.strip() == v["exi_hex"]
    dec = _secc("decode", "--schema", "iso2", "--json", picks[0]["exi_hex"])
    enc = _secc("encode", "--schema", "iso2", "-", stdin=dec.stdout)
    assert enc.stdout.strip() == picks[0]["exi_hex"]


def test_real_subprocess_exit_codes() -> None:
    bad = _secc("decode", "--schema", "iso2", "80ff")
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and "bit offset" in bad.stderr
    usage = _secc("decode", "--schema", "iso2")
    assert usage.returncode == 2 and "usage:" in usage.stderr


# ------------------------------------------------------------------- secc selfcheck


def test_selfcheck_passes_on_the_corpus(capsys: pytest.CaptureFixture[str]) -> None:
    require_vectors()
    rc = selfcheck.main(["--rounds", "20"], prog="secc selfcheck")
    out, err = capsys.readouterr()
    assert rc == 0, out + err
    assert "selfcheck passed" in out
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line[:1].isalpha()}
    # vectors, identical, refused, digests, signatures, refs, stale
    assert lines["iso2"][:3] == ["131", "129", "2"]
    assert lines["din"][:2] == ["109", "109"]
    assert lines["iso2-fragment"][:4] == ["15", "14", "1", "14"]
    assert lines["xmldsig-fragment"][4] == "10"
    assert int(lines["iso2"][5]) >= 16  # Reference digests recomputed in signed messages
    assert "CurrentDemandReq: decode" in out


def test_selfcheck_without_vectors_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = selfcheck.main(["--vectors", str(tmp_path / "none.jsonl")], prog="secc selfcheck")
    _, err = capsys.readouterr()
    assert rc == 1 and "is absent" in err
    assert selfcheck.main(["--rounds", "0"], prog="secc selfcheck") == 2
    assert selfcheck.main(["--bogus"], prog="secc selfcheck") == 2


def _tampered(tmp_path: Path, name_part: str, key: str, edit: Any) -> Path:
    lines = []
    for v in require_vectors():
        if name_part in v["name"] and v["valid"]:
            v = {**v, key: edit(v[key])}  # noqa: PLW2901
            name_part = "\0"  # only the first
        lines.append(json.dumps(v))
    path = tmp_path / "vectors.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _flip_last_hex(h: str) -> str:
    return h[:-1] + ("0" if h[-1] != "0" else "1")


@pytest.mark.parametrize(
    ("name_part", "key", "edit", "message"),
    [
        # a 1 in the padding bits (not checked: only whole octets after it are) decodes
        ("iso2_CurrentDemandReq", "exi_hex", _flip_last_hex, "re-encoded bytes differ"),
        # a non-zero octet after the padded end is refused
        ("iso2_CurrentDemandReq", "exi_hex", lambda h: h + "01", "not all zero"),
        ("xmldsigfrag_", "signature_value_hex", _flip_last_hex, "signature does not verify"),
        ("iso2frag_eMAID", "digest_sha256_b64", lambda d: "A" + d[1:], "digest differs"),
        ("iso2_SessionSetupReq", "valid", lambda _: False, "invalid stream decoded"),
        (
            "iso2_CurrentDemandReq",
            "exi_hex",
            lambda _: "8098ff",
            "at /V2G_Message/Header (bit offset",
        ),
    ],
)
def test_selfcheck_fails_on_a_tampered_corpus(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name_part: str,
    key: str,
    edit: Any,
    message: str,
) -> None:
    path = _tampered(tmp_path, name_part, key, edit)
    rc = selfcheck.main(["--vectors", str(path), "--rounds", "5"], prog="secc selfcheck")
    out, err = capsys.readouterr()
    assert rc == 1 and "selfcheck FAILED" in err
    fails = [line for line in out.splitlines() if "FAIL " in line]
    assert len(fails) == 1 and message in fails[0], out


def test_selfcheck_as_a_real_process() -> None:
    require_vectors()
    exe = [str(SECC)] if SECC.exists() else [sys.executable, "-m", "secc.cli.main"]
    done = subprocess.run(
        [*exe, "selfcheck", "--rounds", "10"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "selfcheck passed" in done.stdout
