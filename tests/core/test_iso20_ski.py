"""The -20 contract certificate's SubjectKeyIdentifier (SKI), [V2G20-2492].

What the standard says: the SKI enters one computation only, the AAD of the contract
key encryption in certificate installation: the PCID (18 characters) followed by "the
SKI value of the contract certificate ... encoded as a hexa-decimal string with capital
letters and digits (16 bytes)", i.e. the 64-bit SKI of the -20 certificate profiles
(Annex B: RFC 5280 4.2.1.2 method (2), type 0100 and the low 60 bits of the SHA-1 of the
public key), which the EV and the back end compute; the station passes the installation
through untouched.

What the station derives from a contract certificate does not involve the SKI at all:
the eMAID is the subject's CN, and the certificate data the CSMS gets (OCPP
iso15118CertificateHashData) is the OCSP CertID: hashes of the issuer's name and public
key and the serial number.  A test PKI with 20-byte SHA-1 SKIs (method 1, what the
project's test PKI and OpenSSL's ``subjectKeyIdentifier=hash`` make) therefore changes no
identifier the station sends; these tests prove it with a chain on the -20 profile's
64-bit SKIs beside a twin with 20-byte ones, and check the EV's AAD on the 64-bit one."""

from __future__ import annotations

import datetime as dt
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from secc.core.actions import RequestAuthorization
from secc.ev.install20 import aad, open_contract_key, seal_contract_key
from secc.ocpp_bridge.mapping import contract_hash_data

from .iso20_peer import START, Ev
from .iso20_pki import EMAID, Chain, make_chain
from .test_iso20_pnc import Pki, authorize_ok, pnc_config

PCID = "WMIV1234567890ABC1"


def ski64(key: ec.EllipticCurvePublicKey) -> bytes:
    """RFC 5280 4.2.1.2 method (2): 0100 then the low 60 bits of SHA-1(subjectPublicKey)."""
    spk = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    low = int.from_bytes(hashlib.sha1(spk).digest()[-8:], "big") & ((1 << 60) - 1)
    return ((0b0100 << 60) | low).to_bytes(8, "big")


def profile_chain() -> tuple[Chain, Chain, list[ec.EllipticCurvePrivateKey]]:
    """A P-521 contract chain with 20-byte SKIs and its twin on 64-bit SKIs (same keys,
    names, serials; each AKI the issuer's SKI)."""
    keys = [ec.generate_private_key(ec.SECP521R1()) for _ in range(4)]  # root, sub1, sub2, leaf
    names = [x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)])
             for cn in ("MO Root 64", "MO Sub 1 64", "MO Sub 2 64", EMAID)]  # fmt: skip

    def chain(sized: bool) -> Chain:
        certs: list[x509.Certificate] = []
        for i, key in enumerate(keys):
            ca = i < 3
            pub = key.public_key()
            ski = ski64(pub) if sized else x509.SubjectKeyIdentifier.from_public_key(pub).digest
            issuer_pub = keys[i - 1].public_key() if i else pub
            aki = (
                ski64(issuer_pub)
                if sized
                else x509.SubjectKeyIdentifier.from_public_key(issuer_pub).digest
            )
            b = (
                x509.CertificateBuilder()
                .subject_name(names[i])
                .issuer_name(names[i - 1] if i else names[0])
                .public_key(pub)
                .serial_number(1000 + i)
                .not_valid_before(START - dt.timedelta(days=1))
                .not_valid_after(START + dt.timedelta(days=365))
                .add_extension(x509.SubjectKeyIdentifier(ski), False)
                .add_extension(x509.AuthorityKeyIdentifier(aki, None, None), False)
                .add_extension(
                    x509.BasicConstraints(ca=ca, path_length=(2 - i) if ca else None), True
                )
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=not ca, content_commitment=False,
                        key_encipherment=False, data_encipherment=False, key_agreement=False,
                        key_cert_sign=ca, crl_sign=ca, encipher_only=False, decipher_only=False,
                    ),
                    True,
                )
                .add_extension(
                    x509.AuthorityInformationAccess([x509.AccessDescription(
                        x509.AuthorityInformationAccessOID.OCSP,
                        x509.UniformResourceIdentifier("http://127.0.0.1:8888/mo64"))]),
                    False,
                )
            )  # fmt: skip
            certs.append(b.sign(keys[i - 1] if i else key, hashes.SHA512()))
        root, sub1, sub2, leaf = certs
        return Chain(leaf, keys[3], (sub2, sub1), root)

    return chain(True), chain(False), keys


def test_the_aad_carries_the_64_bit_ski_as_16_hex_characters() -> None:
    """[V2G20-2492]: PCID (18) then the SKI as 16 capital hex characters: 34 octets; the
    back end's sealing and the EV's opening agree on it."""
    sized, _, keys = profile_chain()
    ski = sized.leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert len(ski) == 8 and ski[0] >> 4 == 0b0100
    data = aad(PCID, sized.leaf)
    assert data == PCID.encode() + ski.hex().upper().encode()
    assert len(data) == 34 and data[18:].decode().isupper()
    oem = ec.generate_private_key(ec.SECP521R1())
    dh, sealed = seal_contract_key(keys[3], oem.public_key(), PCID, sized.leaf)
    opened = open_contract_key(oem, dh, sealed, PCID, sized.leaf)
    assert opened.private_numbers().private_value == keys[3].private_numbers().private_value


def test_the_station_derives_nothing_from_the_ski() -> None:
    """The same contract (keys, names, serials) on 64-bit and on 20-byte SKIs: the station
    accepts both through its real PnC path and asks the backend with the same eMAID and
    chain, and the CSMS's certificate hash data are the same."""
    sized, wide, _ = profile_chain()
    asks: list[RequestAuthorization] = []
    for chain in (sized, wide):
        pki = Pki(mo=chain, mo_ed448=chain, vehicle=vehicle, oem=vehicle,
                  foreign_mo=chain, foreign_vehicle=vehicle)  # fmt: skip
        ev = Ev(cfg=pnc_config(pki), dc=True)
        asks.append(authorize_ok(ev, chain))
    assert [a.id_token for a in asks] == [EMAID, EMAID]
    assert asks[0].kind == asks[1].kind == "eMAID"
    data = [
        contract_hash_data([chain.leaf, *chain.subs], [chain.root], "SHA512")
        for chain in (sized, wide)
    ]
    assert data[0] and data[0] == data[1]


vehicle = make_chain("WMIV1234567890ABCDEF", START, root_cn="OEM Root", leaf_usage="tls")
