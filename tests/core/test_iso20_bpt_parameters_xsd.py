"""The BPT service parameters the station sends in ServiceDetailRes, against the -20 XSD.

The XSD (V2G_CI_CommonMessages.xsd, ParameterType) gives a Parameter a required Name
attribute of v2gci_ct:nameType (a string of at most 80 characters) and exactly one value
of a choice (boolValue, byteValue, shortValue, intValue, rationalNumber, finiteString);
it names no parameter: the names come from the standard's parameter tables, and the
two open implementations disagree on the AC_BPT islanding one (Josev
"GridCodeIslandingDetectionMethod", EVerest libiso15118 "DetectionMethodGridCodeIslanding";
docs/interop.md).  Both are valid XSD content.  What the station must do is send valid
content: the AC_BPT and DC_BPT ServiceDetailRes it builds, encoded by its codec and
turned into XML, validate against the XSD in ../shared/schemas/iso15118_20 with lxml
(an independent validator), each parameter with its one intValue."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from secc import codec
from secc.codec.xml import to_xml

from .iso20_peer import Ev
from .test_iso20_bpt import bpt_config, params, to_bpt_selected

XSD = Path(__file__).resolve().parents[3] / "shared" / "schemas" / "iso15118_20"
MESSAGES = XSD / "V2G_CI_CommonMessages.xsd"


DSIG = XSD.parent / "xmldsig-core-schema.xsd"


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> etree.XMLSchema:
    if not (MESSAGES.is_file() and DSIG.is_file()):
        pytest.skip(f"the -20 XSDs are not at {XSD} (../shared/schemas beside the worktree)")
    # the -20 set imports xmldsig-core-schema.xsd from its own directory; the shared tree
    # keeps it one level up: a directory of links puts them side by side (read in place)
    here = tmp_path_factory.mktemp("xsd")
    for source in (*XSD.glob("*.xsd"), DSIG):
        (here / source.name).symlink_to(source)
    parser = etree.XMLParser(load_dtd=False, no_network=True, resolve_entities=False)
    return etree.XMLSchema(etree.parse(str(here / MESSAGES.name), parser))


@pytest.mark.parametrize("dc", [False, True], ids=["AC_BPT", "DC_BPT"])
def test_bpt_service_detail_validates_against_the_xsd(schema: etree.XMLSchema, dc: bool) -> None:
    ev = Ev(cfg=bpt_config(), dc=dc)
    detail = to_bpt_selected(ev, dynamic=False)
    exi = codec.encode(detail)  # what went out, decoded back as the EV reads it
    back = codec.decode(exi, "iso20-common", strict=True)
    document = etree.fromstring(to_xml(back).encode())
    schema.assertValid(document)
    for pid in (1, 2):
        names = list(params(back, pid))
        assert all(len(n) <= 80 for n in names)  # nameType
        assert names[-2 if dc else -3 :][:2] == ["BPTChannel", "GeneratorMode"]
    for p in back.service_parameter_list.parameter_set[0].parameter:
        values = [
            v
            for v in (
                p.bool_value,
                p.byte_value,
                p.short_value,
                p.int_value,
                p.rational_number,
                p.finite_string,
            )
            if v is not None
        ]
        assert len(values) == 1 and p.int_value is not None, p
    islanding = [p for p in params(back, 1) if "Islanding" in p]
    assert islanding == ([] if dc else ["GridCodeIslandingDetectionMethod"])
