"""``secc exi`` as a lab engineer uses it: stdin, several messages per call, the schema
detected (payload type, XML namespace) or guessed by a reported trial, fragments, a wrong
``--schema`` that names the right one, one error prefix, a closed pipe, help texts.

The public vectors in ../shared/vectors are read by path (the tests that need them say so
when the folder is absent); the processes are real ``python -m secc.cli.main exi ...``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from secc import codec
from secc.cli import exi as exi_cli

from . import strategies as S  # noqa: N812
from .vectors import CODEC_SCHEMA, ISO20_VECTORS, REPO, VECTORS, load_vectors, require_vectors

DOCUMENTS = ("iso2", "din", "appHandshake", "apphand", *S.ISO20_SCHEMAS)
ISO20_CM = "urn:iso:std:iso:15118:-20:CommonMessages"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = exi_cli.main(list(argv), prog="secc exi")
    out, err = capsys.readouterr()
    return rc, out, err


def _secc(*argv: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "secc.cli.main", "exi", *argv],
        input=stdin,
        capture_output=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )


def _valid(schema: str, message: str | None = None, *, iso20: bool = False) -> dict[str, Any]:
    for v in require_vectors(ISO20_VECTORS if iso20 else VECTORS):
        if v["valid"] and v["schema"] == schema and (message is None or message in v["name"]):
            return v
    raise AssertionError(f"no valid {schema} vector {message}")


def _frame(ptype: int, body: bytes) -> bytes:
    return b"\x01\xfe" + ptype.to_bytes(2, "big") + len(body).to_bytes(4, "big") + body


def _all_documents() -> list[dict[str, Any]]:
    found = [
        v
        for path in (VECTORS, ISO20_VECTORS)
        for v in load_vectors(path)
        if v["valid"] and v["schema"] in DOCUMENTS
    ]
    if not found:
        pytest.skip("../shared/vectors is absent")
    return found


# ------------------------------------------------------------------ the schema guessed


def test_trial_names_the_vectors_schema_for_every_public_document(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every valid public stream, decoded without --schema and without a frame: the guess
    is the schema the vector belongs to, and the stderr line says it was a trial (and
    names the other candidates where several fit)."""
    found = _all_documents()
    ambiguous = []
    for v in found:
        schema = CODEC_SCHEMA[v["schema"]]
        rc, out, err = _run(capsys, "decode", v["exi_hex"])
        assert rc == 0, (v["name"], err)
        assert err.startswith(f"secc exi: schema {schema} (guessed by trial decoding"), err
        rc, ref, _ = _run(capsys, "decode", "--schema", schema, v["exi_hex"])
        assert out == ref
        if "also fits" in err:
            ambiguous.append((v["name"], err))
    assert len(found) > 300
    # the documented ambiguity: a -20 AuthorizationReq is also a valid ACDP message
    assert any("AuthorizationReq" in name and "iso20-acdp" in e for name, e in ambiguous)
    assert all("pass --schema to choose" in e for _, e in ambiguous)


def test_the_ambiguous_authorization_req_is_reported_with_its_candidates(
    capsys: pytest.CaptureFixture[str],
) -> None:
    v = _valid("iso20-common", "AuthorizationReq", iso20=True)
    rc, out, err = _run(capsys, "decode", v["exi_hex"])
    assert rc == 0 and "AuthorizationReq" in out.splitlines()[0]
    assert err == (
        "secc exi: schema iso20-common (guessed by trial decoding: it also fits iso20-acdp; "
        "iso20-common comes first in the order apphand, iso2, din, iso20-common, iso20-ac, "
        "iso20-dc, iso20-wpt, iso20-acdp; pass --schema to choose)\n"
    )
    # the other candidate on request, with nothing reported
    rc, out, err = _run(capsys, "decode", "--schema", "iso20-acdp", v["exi_hex"])
    assert rc == 0 and err == "" and "ACDP" in out.splitlines()[0]


def test_payload_type_8001_is_a_trial_among_handshake_iso2_and_din(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for schema, message in (("iso2", "CurrentDemandReq"), ("din", "SessionSetupReq")):
        v = _valid(schema, message)
        framed = _frame(0x8001, bytes.fromhex(v["exi_hex"])).hex()
        rc, out, err = _run(capsys, "decode", framed)
        assert rc == 0 and message in out
        assert err.startswith(
            f"secc exi: V2GTP payload type 8001: schema {schema} (guessed by trial decoding"
        ), err


def test_a_wrong_schema_names_the_one_that_fits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    v = _valid("din", "SessionSetupReq")
    rc, out, err = _run(capsys, "decode", "--schema", "iso2", v["exi_hex"])
    assert (rc, out) == (1, "")
    assert err.startswith("secc exi: error: does not decode as iso2 (")
    assert err.endswith("it decodes as din: pass --schema din\n") and err.count("\n") == 1
    # in a 0x8001 frame too
    framed = _frame(0x8001, bytes.fromhex(v["exi_hex"])).hex()
    rc, _, err = _run(capsys, "decode", "--schema", "apphand", framed)
    assert rc == 1 and "pass --schema din" in err
    # encode: the root belongs to another schema than --schema says
    rc, xml, _ = _run(capsys, "decode", "--schema", "din", v["exi_hex"])
    path = tmp_path / "din.xml"
    path.write_text(xml)
    rc, out, err = _run(capsys, "encode", "--schema", "iso2", str(path))
    assert (rc, out) == (1, "") and err.count("\n") == 1
    assert err.startswith("secc exi: error: ") and err.endswith("pass --schema din\n"), err
    # a -20 frame with the wrong payload type: the body's schema is named
    dc = _valid("iso20-dc", "DC_ChargeLoopReq", iso20=True)
    rc, out, err = _run(capsys, "decode", _frame(0x8002, bytes.fromhex(dc["exi_hex"])).hex())
    assert (rc, out) == (1, "") and err.count("\n") == 1
    assert err.startswith("secc exi: error: V2GTP payload type 8002 carries iso20-common, ")
    assert "it decodes as iso20-dc: a wrong payload type?" in err
    # a stream no schema decodes with says so, without a guess
    rc, out, err = _run(capsys, "decode", "80ff")
    assert (rc, out) == (1, "") and "decodes with none of apphand, iso2, din" in err


def test_encode_takes_the_schema_from_the_namespace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for schema, message, iso20 in (
        ("iso2", "CurrentDemandReq", False),
        ("din", "SessionSetupReq", False),
        ("iso20-dc", "DC_ChargeLoopReq", True),
    ):
        v = _valid(schema, message, iso20=iso20)
        rc, xml, _ = _run(capsys, "decode", "--schema", schema, v["exi_hex"])
        path = tmp_path / "m.xml"
        path.write_text(xml)
        rc, out, err = _run(capsys, "encode", str(path))
        assert (rc, err, out) == (0, "", v["exi_hex"] + "\n")


# ----------------------------------------------------------- stdin, several messages


def test_stdin_binary_frames_and_hex_text() -> None:
    v = _valid("iso20-dc", "DC_ChargeLoopReq", iso20=True)
    body = bytes.fromhex(v["exi_hex"])
    ref = _secc("decode", "--schema", "iso20-dc", v["exi_hex"])
    assert ref.returncode == 0, ref.stderr
    # binary EXI on stdin
    done = _secc("decode", "--schema", "iso20-dc", "-", stdin=body)
    assert (done.returncode, done.stdout) == (0, ref.stdout), done.stderr
    # hex text on stdin, split over lines
    text = (v["exi_hex"][:10] + "\n" + v["exi_hex"][10:] + "\n").encode()
    done = _secc("decode", "--schema", "iso20-dc", "-", stdin=text)
    assert (done.returncode, done.stdout) == (0, ref.stdout), done.stderr
    # a TCP stream saved as raw bytes: two frames back to back, the schema from each one
    other = _valid("iso20-common", "SessionSetupReq", iso20=True)
    stream = _frame(0x8004, body) + _frame(0x8002, bytes.fromhex(other["exi_hex"]))
    done = _secc("decode", "--json", "-", stdin=stream)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert [next(iter(json.loads(line))) for line in lines] == [
        "DC_ChargeLoopReq",
        "SessionSetupReq",
    ]
    assert done.stderr.decode().splitlines() == [
        "secc exi: message 1 (stdin, frame 1): V2GTP payload type 8004: schema iso20-dc "
        "(from the payload type)",
        "secc exi: message 2 (stdin, frame 2): V2GTP payload type 8002: schema iso20-common "
        "(from the payload type)",
    ]
    # octets after the last frame are reported, never dropped; the frames before them
    # are still decoded
    done = _secc("decode", "-", stdin=stream + b"\x00\x01")
    assert done.returncode == 1
    assert done.stderr.decode().splitlines()[-1] == (
        "secc exi: error: message 3 (stdin, frame 3): 2 octets after V2GTP frame 2 are not a frame"
    )
    assert done.stdout.decode().count("<!-- secc exi: message") == 2


def test_several_arguments_are_several_messages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = _valid("iso2", "CurrentDemandReq"), _valid("din", "SessionSetupReq")
    rc, out, err = _run(capsys, "decode", a["exi_hex"], "80ff", b["exi_hex"])
    assert rc == 1  # the bad one in the middle: reported in its place, the others decoded
    lines = err.splitlines()
    assert lines[0].startswith("secc exi: message 1 (argument 1): schema iso2 (guessed")
    assert lines[1].startswith(
        "secc exi: error: message 2 (argument 2): decodes with none of apphand, iso2"
    )
    assert lines[2].startswith("secc exi: message 3 (argument 3): schema din (guessed")
    heads = [line for line in out.splitlines() if line.startswith("<!-- secc exi: message")]
    assert heads == [
        "<!-- secc exi: message 1 (argument 1): iso2 -->",
        "<!-- secc exi: message 3 (argument 3): din -->",
    ]
    # each document between the markers encodes back to its bytes
    docs = out.split("<!-- secc exi: message")[1:]
    for doc, v in zip(docs, (a, b), strict=True):
        path = tmp_path / "m.xml"
        path.write_text(doc.split("-->\n", 1)[1])
        assert _run(capsys, "encode", str(path))[1] == v["exi_hex"] + "\n"
    # JSON: one document a line; encode takes several files and prints one line each (the
    # JSON root key is a local name: V2G_Message is ISO-2's and DIN's, --schema says which)
    c = _valid("iso2", "SessionSetupReq")
    rc, out, _ = _run(capsys, "decode", "--json", a["exi_hex"], c["exi_hex"])
    assert rc == 0
    paths = []
    for n, line in enumerate(out.splitlines()):
        paths.append(tmp_path / f"{n}.json")
        paths[-1].write_text(line)
    rc, out, err = _run(capsys, "encode", "--schema", "iso2", *map(str, paths))
    assert (rc, out) == (0, f"{a['exi_hex']}\n{c['exi_hex']}\n"), err


def test_split_hex_and_two_stdins_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _run(capsys, "decode", "80", "98", "02")
    assert (rc, out) == (2, "")
    assert err == (
        "secc exi: error: argument 1 (80) is a single octet: every argument is one message; "
        "quote a message that holds spaces ('80 98 02 ...')\n"
    )
    rc, _, err = _run(capsys, "decode", "-", "-")
    assert rc == 2 and err == "secc exi: error: - (stdin) can be given only once\n"
    rc, _, err = _run(capsys, "encode", "-", "-")
    assert rc == 2 and err == "secc exi: error: - (stdin) can be given only once\n"


# -------------------------------------------------------------------------- fragments


def test_fragments_decode_and_encode_by_element_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every public -2 fragment (signed elements, SignedInfo) through --fragment ELEMENT
    without --schema: the schema follows from the element, XML and JSON encode back."""
    found = [
        v
        for v in require_vectors()
        if v["valid"] and v["schema"] in ("iso2-fragment", "xmldsig-fragment")
    ]
    assert len(found) == 24  # 15 + 10 public fragments, one of them invalid
    for v in found:
        schema = CODEC_SCHEMA[v["schema"]]
        root, _ = codec.decode_fragment(bytes.fromhex(v["exi_hex"]), schema)
        for extra in ((), ("--json",)):
            rc, out, err = _run(capsys, "decode", "--fragment", root.local, *extra, v["exi_hex"])
            assert rc == 0, (v["name"], err)
            assert f"schema {schema} (" in err, err
            path = tmp_path / "f.txt"
            path.write_text(out)
            rc, out, err = _run(capsys, "encode", "--fragment", str(path))
            assert rc == 0, (v["name"], err)
            assert out == v["exi_hex"] + "\n"
            assert (
                err == f"secc exi: fragment {root.local}: schema {schema} (from the root element)\n"
            )


def test_iso20_signed_fragments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mod = codec.schema_module("iso20-common")
    for local in ("SignedInstallationData", "SignedMeteringData"):
        root = next(r for r in mod.FRAGMENT if r.local == local and r.ns == ISO20_CM)
        data = codec.encode_fragment(
            S.minimal("iso20-common", root.cls), "iso20-common", name=local
        )
        rc, xml, err = _run(capsys, "decode", "--fragment", local, data.hex())
        assert rc == 0, err
        assert err == "secc exi: schema iso20-common (the only schema with that fragment element)\n"
        path = tmp_path / "f.xml"
        path.write_text(xml)
        rc, out, err = _run(capsys, "encode", "--fragment", str(path))
        assert (rc, out) == (0, data.hex() + "\n"), err
        # a whole-message decode of the fragment fails or is something else, never this
        rc, out, err = _run(capsys, "decode", "--schema", "iso20-common", data.hex())
        assert rc == 1 or local not in out.splitlines()[0]
    # the element named must be the one in the fragment
    smd = next(r.cls for r in mod.FRAGMENT if r.local == "SignedMeteringData")
    data = codec.encode_fragment(
        S.minimal("iso20-common", smd), "iso20-common", name="SignedMeteringData"
    )
    rc, out, err = _run(
        capsys, "decode", "--schema", "iso20-common", "--fragment", "SignedInfo", data.hex()
    )
    assert (rc, out) == (1, "")
    assert "the fragment holds SignedMeteringData, not SignedInfo" in err, err
    rc, _, err = _run(capsys, "decode", "--fragment", "NoSuchElement", data.hex())
    assert (rc, err) == (2, "secc exi: error: NoSuchElement is a fragment element of no schema\n")
    rc, _, err = _run(capsys, "decode", "--fragment", "SignedInfo", _frame(0x8002, data).hex())
    assert rc == 1 and "a V2GTP frame carries a whole message, not a fragment" in err


# --------------------------------------------------------- errors, pipes, help texts


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["decode", "--schema", "iso9", "80"], 2),
        (["decode"], 2),
        (["decode", "80g0"], 2),
        (["decode", "@/nonexistent/x"], 2),
        (["decode", "--schema", "iso2", "8098"], 1),
        (["decode", "01fe8007000000018000"], 1),
        (["decode", "--schema", "xmldsig", "8000"], 2),
        (["encode", "/nonexistent/x.xml"], 2),
        (["encode", "--fragment", "--v2gtp", "/dev/null"], 2),
        (["frobnicate"], 2),
        ([], 2),
    ],
)
def test_one_error_prefix(argv: list[str], code: int, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _run(capsys, *argv)
    assert (rc, out) == (code, "")
    last = err.splitlines()[-1]
    assert last.startswith("secc exi: error: "), err
    # argparse's own errors come after its usage lines; ours are one line
    assert err.count("\n") == 1 or err.startswith("usage: "), err


def test_a_closed_pipe_is_no_traceback() -> None:
    """``secc exi decode ... | head -1``: the reader closes after one line; the writer
    stops quietly (exit 0, nothing on stderr but the schema reports)."""
    v = _valid("iso2", "CertificateInstallationRes")
    args = [v["exi_hex"]] * 200  # far more output than a pipe buffer holds
    proc = subprocess.Popen(
        [sys.executable, "-m", "secc.cli.main", "exi", "decode", "--schema", "iso2", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert first.startswith(b"<!-- secc exi: message 1")
    assert "Traceback" not in err and "Exception" not in err and "Broken" not in err, err


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_option_says_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    for name, sub in _subparsers(exi_cli._parser("secc exi")).items():
        for action in sub._actions:
            if action.option_strings and not isinstance(action, argparse._HelpAction):
                assert "default" in (action.help or ""), (name, action.option_strings)
        rc, out, _ = _run(capsys, name, "--help")
        assert rc == 0 and "exit codes: 0 ok, 1 " in out and "``" not in out


def _four_phases() -> bytes:
    """A PowerDeliveryReq whose ProfileEntry says 4 phases (the XSD allows 1-3; a
    production car sends it), encoded as a car would: leniently."""
    m = codec.schema_module("iso2")
    entry = m.ProfileEntry(
        charging_profile_entry_start=0,
        charging_profile_entry_max_power=m.PhysicalValue(
            multiplier=0, unit=m.UnitSymbol.W, value=11000
        ),
        charging_profile_entry_max_number_of_phases_in_use=4,
    )
    req = m.PowerDeliveryReq(
        charge_progress=m.ChargeProgress.Start,
        sa_schedule_tuple_id=1,
        charging_profile=m.ChargingProfile(profile_entry=(entry,)),
        ev_power_delivery_parameter=None,
    )
    msg = m.V2G_Message(
        header=m.MessageHeader(session_id=b"\x01" * 8), body=m.Body(body_element=req)
    )
    return codec.encode(msg, "iso2", lenient=True)


def test_values_outside_the_facets_are_decoded_with_a_warning_and_round_trip(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Decode is as liberal as the station (a warning per violation, --strict refuses);
    encode is strict unless --lenient rebuilds what the peer sent byte for byte."""
    data = _four_phases()
    rc, out, err = _run(capsys, "decode", "--schema", "iso2", data.hex())
    assert rc == 0
    assert "ChargingProfileEntryMaxNumberOfPhasesInUse>4</" in out
    assert "warning: outside the schema's facets: " in err
    assert "ChargingProfileEntryMaxNumberOfPhasesInUse: 4 violates maxInclusive 3" in err
    rc, _, err = _run(capsys, "decode", "--schema", "iso2", "--strict", data.hex())
    assert rc == 1 and "error: refused (--strict)" in err
    # the trial guess finds the schema although the stream violates a facet
    rc, _, err = _run(capsys, "decode", data.hex())
    assert rc == 0 and "schema iso2" in err
    xml = tmp_path / "pd.xml"
    xml.write_text(out)
    rc, _, err = _run(capsys, "encode", str(xml))
    assert rc == 1 and err.startswith("secc exi: error:")
    rc, out, _ = _run(capsys, "encode", "--lenient", str(xml))
    assert rc == 0 and out.strip() == data.hex()
