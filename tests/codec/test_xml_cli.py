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

from .vectors import CODEC_SCHEMA, ISO20_VECTORS, REPO, require_vectors, vectors

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
    # but no EXI stream carries it: EXI strings are XML character data
    with pytest.raises(codec.EncodeError, match=r"U\+0001 .*not an XML 1\.0 character"):
        codec.encode(bad)


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
    # every argument is one message: a message split by the shell is refused, not misread
    rc, out, err = _run(capsys, "decode", "--schema", "iso2", *spaced.split())
    assert (rc, out) == (2, "") and "argument 1 (01) is a single octet" in err
    assert err.splitlines()[-1].startswith("secc exi: error: ")
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
        (["decode", "80"], 1, "decodes with none of apphand, iso2, din"),
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
    # one prefix for every error, argparse's included (after its usage line)
    assert err.splitlines()[-1].startswith("secc exi: error: "), err
    if code == 1:
        assert err.count("\n") == 1


def test_cli_encode_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text(_xml_of_cdreq().replace("<v2gci_t:EVRESSSOC>50<", "<v2gci_t:EVRESSSOC>101<"))
    rc, out, err = _run(capsys, "encode", "--schema", "iso2", str(bad))
    assert (rc, out) == (1, "")
    assert err == (
        "secc exi: error: 101 is outside 0..100 at "
        "/V2G_Message/Body/CurrentDemandReq/DC_EVStatus/EVRESSSOC\n"
    )
    bad.write_text('{"V2G_Message": ')
    rc, _, err = _run(capsys, "encode", "--schema", "iso2", str(bad))
    assert rc == 1 and err.startswith("secc exi: error: not valid JSON") and err.count("\n") == 1
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


# ------------------------------------------------------------------- ISO 15118-20

ISO20_SCHEMAS = ("iso20-common", "iso20-ac", "iso20-dc", "apphand")
PAYLOAD_TYPE = {
    "iso20-common": 0x8002,
    "iso20-ac": 0x8003,
    "iso20-dc": 0x8004,
    "iso20-acdp": 0x8005,
    "iso20-wpt": 0x8006,
    "apphand": 0x8001,
}
ISO20_NS = "urn:iso:std:iso:15118:-20:"


def _frame(ptype: int, data: bytes) -> str:
    return (b"\x01\xfe" + ptype.to_bytes(2, "big") + len(data).to_bytes(4, "big") + data).hex()


def _iso20_vector(message: str) -> dict[str, Any]:
    for v in require_vectors(ISO20_VECTORS):
        if v["valid"] and v.get("message") == message:
            return v
    raise AssertionError(f"no -20 vector {message}")


@pytest.mark.parametrize("v", vectors(*ISO20_SCHEMAS, path=ISO20_VECTORS))
def test_iso20_cli_round_trips_with_schema_from_the_frame_and_the_root(
    v: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """decode (schema from the V2GTP payload type) -> XML / JSON -> encode (schema from the
    root element): the same bytes; and the same output as with --schema given."""
    schema = CODEC_SCHEMA[v["schema"]]
    data = bytes.fromhex(v["exi_hex"])
    framed = _frame(PAYLOAD_TYPE[schema], data)
    # valid -20 vectors may carry a 4-octet SessionID (minLength 8): decoded, one warning
    warnings = "".join(
        f"secc exi: warning: outside the schema's facets: {x}\n"
        for x in codec.decode_checked(data, schema).violations
    )
    for extra, suffix in (((), "xml"), (("--json",), "json")):
        rc, plain, err = _run(capsys, "decode", "--schema", schema, *extra, v["exi_hex"])
        assert rc == 0 and err == warnings, err
        if schema == "apphand":  # 0x8001 is shared with ISO-2 and DIN: --schema says which
            rc, out, err = _run(capsys, "decode", "--schema", schema, *extra, framed)
            assert "(from --schema)" in err
        else:
            rc, out, err = _run(capsys, "decode", *extra, framed)
            assert err == (
                f"secc exi: V2GTP payload type {PAYLOAD_TYPE[schema]:04x}: schema {schema}"
                " (from the payload type)\n" + warnings
            )
        assert rc == 0 and out == plain
        path = tmp_path / f"m.{suffix}"
        if suffix == "json":
            # the JSON root key is a local name (ISO-2 declares an AuthorizationRes too):
            # "{namespace}local" names the schema, as the XML root's namespace does
            obj = json.loads(out)
            ((key, body),) = obj.items()
            root, _ = codec.decode_document(data, schema)
            out = json.dumps({f"{{{root.ns}}}{key}": body})
        path.write_text(out, encoding="utf-8")
        rc, out, err = _run(capsys, "encode", str(path))
        assert rc == 0, err
        assert bytes.fromhex(out.strip()) == data, suffix
        rc, out, err = _run(capsys, "encode", "--v2gtp", str(path))
        assert rc == 0 and out.strip() == framed


def test_iso20_xml_uses_the_iso20_namespaces(capsys: pytest.CaptureFixture[str]) -> None:
    v = _iso20_vector("DC_ChargeLoopReq")
    rc, out, _ = _run(capsys, "decode", "--schema", "iso20-dc", v["exi_hex"])
    assert rc == 0
    root = etree.fromstring(out.encode())
    assert root.tag == f"{{{ISO20_NS}DC}}DC_ChargeLoopReq"
    assert root.nsmap[root.prefix] == f"{ISO20_NS}DC" and root.prefix == "v2gci_dc"
    header = root[0]
    assert header.tag == f"{{{ISO20_NS}CommonTypes}}Header" and header.prefix == "v2gci_ct"
    v = _iso20_vector("SessionSetupReq")
    rc, out, _ = _run(capsys, "decode", "--schema", "iso20-common", v["exi_hex"])
    assert etree.fromstring(out.encode()).prefix == "v2gci_cm"


def test_iso20_schema_sets_without_public_vectors_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """WPT and ACDP (and the -20 messages no public vector covers): minimal messages
    through encode (schema from the root) and decode (schema from the payload type)."""
    from . import strategies as S  # noqa: N812

    for schema in S.ISO20_SCHEMAS:
        for name, cls in S.iso20_messages(schema):
            data = codec.encode(S.minimal(schema, cls), schema, name=name)
            rc, xml, err = _run(capsys, "decode", _frame(PAYLOAD_TYPE[schema], data))
            assert rc == 0 and f"schema {schema} (from the payload type)" in err, err
            assert f"{name}" in xml.splitlines()[0]
            path = tmp_path / "m.xml"
            path.write_text(xml, encoding="utf-8")
            rc, out, err = _run(capsys, "encode", str(path))
            assert rc == 0 and bytes.fromhex(out.strip()) == data, (name, err)


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        # --schema contradicting the payload type
        (["decode", "--schema", "iso20-ac", "01fe8004000000028000"], 1, "carries iso20-dc, not"),
        (["decode", "--schema", "iso20-dc", "01fe8001000000028000"], 1, "does not carry iso20"),
        (["decode", "--schema", "iso2", "01fe8002000000028000"], 1, "carries iso20-common"),
        # 0x8001 alone does not say which schema, and 8000 decodes as none of the three
        (["decode", "01fe8001000000028000"], 1, "decodes with none of apphand, iso2, din"),
        (["decode", "01fe8007000000018000"], 1, "payload type 8007 is not an EXI message"),
        (["decode", "--schema", "iso20-wpt", "01fe80"], 1, "V2GTP header truncated"),
        (["decode", "--schema", "iso20-nope", "80"], 2, "invalid choice"),
    ],
)
def test_iso20_cli_errors(
    argv: list[str], code: int, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, err = _run(capsys, *argv)
    assert rc == code and out == ""
    # one line, after argparse's usage lines for its own errors
    assert message in err.splitlines()[-1], err
    assert "invalid choice" in err or err.count("\n") == 1, err


def test_iso20_decode_error_in_a_frame_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    data = bytes.fromhex(_iso20_vector("DC_ChargeLoopReq")["exi_hex"])
    rc, out, err = _run(capsys, "decode", _frame(0x8004, data + b"\x07"))
    assert (rc, out) == (1, "")
    assert err.startswith("secc exi: error: 1 octets after the end of the stream, not all zero")
    assert err.count("\n") == 1


def test_encode_schema_from_the_root_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.xml"
    # a root no schema declares
    path.write_text(f'<x:Nope xmlns:x="{ISO20_NS}DC"/>')
    rc, out, err = _run(capsys, "encode", str(path))
    assert (rc, out) == (1, "") and "is not a global element of any schema" in err
    # an xmldsig root is global in every set that imports xmldsig: --schema must say
    path.write_text(f'<ds:Signature xmlns:ds="{DSIG}"/>')
    rc, out, err = _run(capsys, "encode", str(path))
    assert (rc, out) == (2, "") and "pass --schema" in err
    # JSON: the root key's local name; the -20 control-mode heads are in every set
    path.write_text('{"CLReqControlMode": {}}')
    rc, out, err = _run(capsys, "encode", str(path))
    assert (rc, out) == (2, "") and "iso20-common, iso20-ac" in err
    path.write_text('{"AuthorizationRes": {}}')  # ISO-2 and -20 CommonMessages
    rc, out, err = _run(capsys, "encode", str(path))
    assert (rc, out) == (2, "") and "of iso2, iso20-common: pass --schema" in err
    path.write_text("<unclosed")
    rc, out, err = _run(capsys, "encode", str(path))
    assert (rc, out) == (1, "") and "not well-formed XML" in err


def test_iso20_real_subprocess() -> None:
    v = _iso20_vector("DC_ChargeLoopRes")
    framed = _frame(0x8004, bytes.fromhex(v["exi_hex"]))
    dec = _secc("decode", framed)
    assert dec.returncode == 0, dec.stderr
    assert "schema iso20-dc (from the payload type)" in dec.stderr
    enc = _secc("encode", "--v2gtp", "-", stdin=dec.stdout)
    assert enc.returncode == 0, enc.stderr
    assert enc.stdout.strip() == framed
    dec = _secc("decode", "--json", framed)
    enc = _secc("encode", "-", stdin=dec.stdout)  # DC_ChargeLoopRes: only in iso20-dc
    assert enc.stdout.strip() == v["exi_hex"], enc.stderr
