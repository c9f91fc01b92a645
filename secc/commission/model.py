"""The vocabulary of commissioning: check results, checks, business use cases, answers."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from secc.commission.context import Context


class Status(enum.StrEnum):
    PASS = "PASS"  # noqa: S105 - a verdict, not a password
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"  # not applicable here (no OCPP configured, no lock on this board, ...)


@dataclass(frozen=True, slots=True)
class Result:
    """One check's verdict: what was found (``reason``) and what to do (``fix``)."""

    status: Status
    reason: str
    fix: str = ""
    details: tuple[tuple[str, str], ...] = ()  # facts for the report (firmware, days, ...)

    @classmethod
    def ok(cls, reason: str, **details: object) -> Result:
        return cls(Status.PASS, reason, "", _details(details))

    @classmethod
    def warn(cls, reason: str, fix: str, **details: object) -> Result:
        return cls(Status.WARN, reason, fix, _details(details))

    @classmethod
    def fail(cls, reason: str, fix: str, **details: object) -> Result:
        return cls(Status.FAIL, reason, fix, _details(details))

    @classmethod
    def skip(cls, reason: str) -> Result:
        return cls(Status.SKIP, reason)


def _details(values: Mapping[str, object]) -> tuple[tuple[str, str], ...]:
    return tuple((k, str(v)) for k, v in values.items())


@dataclass(frozen=True, slots=True)
class Check:
    """A named, small step: ``run(ctx)`` returns its :class:`Result`."""

    name: str  # stable id: "clock", "hal[DE*ABC*E1]", "certs.secc" ...
    title: str  # what an installer reads
    run: Callable[[Context], Awaitable[Result]]


@dataclass(frozen=True, slots=True)
class Outcome:
    """A check with its result (and how long it took)."""

    name: str
    title: str
    result: Result
    seconds: float

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "title": self.title,
            "status": str(self.result.status),
            "reason": self.result.reason,
            "fix": self.result.fix,
            "details": dict(self.result.details),
            "seconds": round(self.seconds, 3),
        }


class UseCase(enum.StrEnum):
    """Business use cases (presets for the Plug & Charge variables)."""

    PUBLIC = "public"  # a mobility operator's contracts, validated by the CSMS
    PRIVATE_MO = "private-mo"  # the facility manager issues contracts: its MO root, local check
    PRIVATE_EMAID = "private-emaid"  # existing contracts registered by eMAID (local list)


@dataclass(frozen=True, slots=True)
class Preset:
    use_case: UseCase
    description: str
    variables: tuple[tuple[str, str, str], ...]  # (component, variable, value)
    needs_mo_root: bool
    needs_local_list: bool


PRESETS: dict[UseCase, Preset] = {
    UseCase.PUBLIC: Preset(
        UseCase.PUBLIC,
        "public charging with a mobility operator's contracts (validated by the CSMS)",
        (
            ("ISO15118Ctrlr", "PnCEnabled", "true"),
            ("ISO15118Ctrlr", "CentralContractValidationAllowed", "true"),
            ("ISO15118Ctrlr", "ContractValidationOffline", "true"),
            ("ISO15118Ctrlr", "ContractCertificateInstallationEnabled", "true"),
            ("ISO15118Ctrlr", "V2GCertificateInstallationEnabled", "true"),
        ),
        needs_mo_root=False,
        needs_local_list=False,
    ),
    UseCase.PRIVATE_MO: Preset(
        UseCase.PRIVATE_MO,
        "private premises: the facility manager issues contracts (its MO root, local check)",
        (
            ("ISO15118Ctrlr", "PnCEnabled", "true"),
            ("ISO15118Ctrlr", "CentralContractValidationAllowed", "false"),
            ("ISO15118Ctrlr", "ContractValidationOffline", "true"),
            ("ISO15118Ctrlr", "ContractCertificateInstallationEnabled", "false"),
            ("ISO15118Ctrlr", "V2GCertificateInstallationEnabled", "true"),
        ),
        needs_mo_root=True,
        needs_local_list=False,
    ),
    UseCase.PRIVATE_EMAID: Preset(
        UseCase.PRIVATE_EMAID,
        "private premises: existing contracts registered by eMAID in the local list",
        (
            ("ISO15118Ctrlr", "PnCEnabled", "true"),
            ("ISO15118Ctrlr", "CentralContractValidationAllowed", "true"),
            ("ISO15118Ctrlr", "ContractValidationOffline", "true"),
            ("ISO15118Ctrlr", "ContractCertificateInstallationEnabled", "false"),
            ("LocalAuthListCtrlr", "Enabled", "true"),
            ("AuthCtrlr", "LocalAuthorizeOffline", "true"),
        ),
        needs_mo_root=False,
        needs_local_list=True,
    ),
}


@dataclass(frozen=True, slots=True)
class Answers:
    """What the installer decides (interactive questions or ``--answers FILE``)."""

    use_case: UseCase = UseCase.PUBLIC
    state_dir: Path | None = None  # device model, local list (default: beside the OCPP db)
    install_roots: tuple[tuple[str, Path], ...] = ()  # (kind, PEM file) to install
    # "V2GCertificate", "ChargingStationCertificate", "V2GCertificate20" (the ISO 15118-20
    # SECC leaf: a P-521 CSR sent as SignCertificate(V2GCertificate))
    sign: tuple[str, ...] = ()
    apply_preset: bool = False  # set the ISO15118Ctrlr variables of the use case
    seccid: str | None = None  # ISO15118Ctrlr.SeccId for the CSR (default: the EVSE ID)
    organization: str | None = None  # OrganizationName for the CSRs
    country: str | None = None
    csms_timeout: float = 20.0  # seconds to wait for BootNotification Accepted
    sign_timeout: float = 120.0  # seconds to wait for CertificateSigned
    anchor_warn_days: int = 90  # warn when a trust anchor expires sooner
    renew_before_days: int = 30
    ocsp_required: bool = False  # missing/stale OCSP answers FAIL instead of WARN
    hal_self_test: bool = True  # exercise contactors and lock (needs no vehicle plugged)
    sdp_probe: bool = True
    # whose file access the start-up checks look at (None: as root the service user
    # "secc" if it exists, else the user running the tool)
    service_user: str | None = None
    extra: Mapping[str, object] = field(default_factory=dict)

    def preset(self) -> Preset:
        return PRESETS[self.use_case]
