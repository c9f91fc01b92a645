"""The station's OCPP 2.0.1 device model: the variables a CSMS reads and sets, persisted.

Values are OCPP strings (``"true"``, ``"60"``); typed getters parse them.  Only the
``Actual`` attribute is kept.  Every change is written to a JSON file atomically (temp
file, fsync, rename), so a crash leaves the old or the new set, never half of one.
Values computed from elsewhere (CertificateEntries from the store, the local list's
Entries) are ReadOnly and supplied by callables.

GetVariables / SetVariables answer per entry with OCPP's statuses: ``Accepted``,
``Rejected`` (ReadOnly on set, WriteOnly on get, a value of the wrong type or range),
``UnknownComponent``, ``UnknownVariable``, ``NotSupportedAttributeType``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from certs.store import atomic_write
from secc.ocpp_bridge.client import ClientConfig

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (component name, variable name)
INT_MAX = 2**31 - 1  # OCPP integers are 32-bit; no interval or count of this station is more
_INTEGER = re.compile(r"-?[0-9]+")  # OCPP's integer form: no sign +, blanks, _ or other digits


@dataclass(frozen=True, slots=True)
class VariableSpec:
    component: str
    variable: str
    data_type: str  # boolean | integer | decimal | string | OptionList | MemberList
    default: str
    mutability: str = "ReadWrite"  # ReadOnly | WriteOnly | ReadWrite
    min_len: int = 0
    max_len: int = 1000
    options: tuple[str, ...] = ()
    min_value: int = 0  # integers: the range a value must be in (variableCharacteristics)
    max_value: int = INT_MAX
    reboot: bool = False  # a new value takes effect at the next start: RebootRequired

    @property
    def key(self) -> Key:
        return (self.component, self.variable)


def _b(c: str, v: str, default: bool, mut: str = "ReadWrite") -> VariableSpec:
    return VariableSpec(c, v, "boolean", "true" if default else "false", mut)


def _i(c: str, v: str, default: int, mut: str = "ReadWrite", *, least: int = 0) -> VariableSpec:
    """An integer variable; ``least`` the smallest value that means something (0 where
    0 switches the function off, 1 where the station cannot work with 0)."""
    return VariableSpec(c, v, "integer", str(default), mut, min_value=least)


def _s(c: str, v: str, default: str, mut: str = "ReadWrite", **kw: object) -> VariableSpec:
    return VariableSpec(c, v, "string", default, mut, **kw)  # type: ignore[arg-type]


# the measurands the station can sample (secc.ocpp_bridge.mapping.meter_value); the
# export ones are sent only by a bidirectional EVSE / a transaction that discharged
MEASURANDS = (
    "Energy.Active.Import.Register",
    "Power.Active.Import",
    "Current.Import",
    "Voltage",
    "SoC",
    "Energy.Active.Export.Register",
    "Power.Active.Export",
    "Current.Export",
)
DEVICE = "DeviceDataCtrlr"
LIMITED = {  # the CSMS actions with a per-message limit -> their list field
    "GetVariables": "getVariableData",
    "SetVariables": "setVariableData",
    "GetReport": "componentVariable",
}
ITEMS_PER_MESSAGE = 64
BYTES_PER_MESSAGE = 65536
# D01: the most entries / octets one SendLocalList may have (LocalAuthListCtrlr
# ItemsPerMessage / BytesPerMessage, required variables of the controller); a CSMS
# splits a longer list into a Full and Differential updates (D01.FR.11)
LOCAL_LIST = "LocalAuthListCtrlr"
LOCAL_LIST_FIELD = "localAuthorizationList"
LOCAL_LIST_ITEMS = 250
LOCAL_LIST_BYTES = 65536
NETWORK_SLOTS = tuple(str(slot) for slot in range(8))  # SetNetworkProfile configurationSlot
ISO = "ISO15118Ctrlr"
SEC = "SecurityCtrlr"
COMM = "OCPPCommCtrlr"
SPECS: tuple[VariableSpec, ...] = (
    _b(ISO, "PnCEnabled", True),
    _b(ISO, "ContractValidationOffline", True),
    _b(ISO, "CentralContractValidationAllowed", False),
    _b(ISO, "V2GCertificateInstallationEnabled", True),
    _b(ISO, "ContractCertificateInstallationEnabled", True),
    _s(ISO, "SeccId", ""),
    _s(ISO, "CountryName", "DE", min_len=2, max_len=2),
    _s(ISO, "OrganizationName", ""),
    _i(SEC, "SecurityProfile", 1, "ReadOnly"),
    _s(SEC, "BasicAuthPassword", "", "WriteOnly", min_len=16, max_len=40),
    _s(SEC, "Identity", "", "ReadOnly"),  # the station id of the [ocpp] section
    _i(SEC, "CertificateEntries", 0, "ReadOnly"),
    _s(SEC, "OrganizationName", ""),
    _i(SEC, "CertSigningWaitMinimum", 60),
    _i(SEC, "CertSigningRepeatTimes", 3),
    _i("OCPPCommCtrlr", "HeartbeatInterval", 300, least=1),
    _i("OCPPCommCtrlr", "MessageTimeout", 30, least=1),
    _i("OCPPCommCtrlr", "MessageAttemptsTransactionEvent", 3, least=1),
    _i("OCPPCommCtrlr", "MessageAttemptIntervalTransactionEvent", 60),
    _i("OCPPCommCtrlr", "RetryBackOffWaitMinimum", 1),
    _i("OCPPCommCtrlr", "RetryBackOffRandomRange", 10),
    _i("OCPPCommCtrlr", "RetryBackOffRepeatTimes", 8),
    # the configuration slots to connect through, best first, e.g. "1,0" (B09, B10)
    # the link is chosen at start: a new priority is RebootRequired (B10: then a Reset)
    VariableSpec(
        COMM,
        "NetworkConfigurationPriority",
        "string",
        "",
        max_len=100,
        options=NETWORK_SLOTS,
        reboot=True,
    ),
    _i(COMM, "NetworkProfileConnectionAttempts", 3, least=1),
    _b("AuthCtrlr", "Enabled", True),
    _b("AuthCtrlr", "AuthorizeRemoteStart", False),
    _b("AuthCtrlr", "LocalAuthorizeOffline", True),
    _b("AuthCtrlr", "LocalPreAuthorize", False, "ReadOnly"),  # not implemented
    _b("AuthCtrlr", "OfflineTxForUnknownIdEnabled", False),
    # C16: IdTokens of this group may stop any transaction, never start one ("": none)
    _s("AuthCtrlr", "MasterPassGroupId", "", max_len=36),
    _b("AuthCacheCtrlr", "Enabled", True),
    _i("AuthCacheCtrlr", "LifeTime", 86400),
    _b("LocalAuthListCtrlr", "Enabled", True),
    _i("LocalAuthListCtrlr", "Entries", 0, "ReadOnly"),
    _i(LOCAL_LIST, "ItemsPerMessage", LOCAL_LIST_ITEMS, "ReadOnly"),
    _i(LOCAL_LIST, "BytesPerMessage", LOCAL_LIST_BYTES, "ReadOnly"),
    _i("SampledDataCtrlr", "TxUpdatedInterval", 60),
    *(
        VariableSpec(
            "SampledDataCtrlr", name, "MemberList", ",".join(MEASURANDS), options=MEASURANDS
        )
        for name in ("TxStartedMeasurands", "TxUpdatedMeasurands", "TxEndedMeasurands")
    ),
    _i("AlignedDataCtrlr", "Interval", 0),  # J01: seconds from midnight UTC; 0: off
    VariableSpec("AlignedDataCtrlr", "Measurands", "MemberList", MEASURANDS[0], options=MEASURANDS),
    _b("TxCtrlr", "StopTxOnInvalidId", True),
    _i("TxCtrlr", "EVConnectionTimeOut", 120),  # F02: how long a remote start waits for the EV
    _s("TxCtrlr", "TxStartPoint", "EVConnected", "ReadOnly"),
    _s("TxCtrlr", "TxStopPoint", "EVConnected", "ReadOnly"),
    _s("ChargingStation", "Model", "secc", "ReadOnly"),
    # B05/B06/B08: how many entries and octets one Get/SetVariables or GetReport may have
    # (more: CALLERROR OccurrenceConstraintViolation / FormatViolation); "<name>/<instance>"
    *(
        _i(DEVICE, f"{name}/{action}", limit, "ReadOnly")
        for action in LIMITED
        for name, limit in (
            ("ItemsPerMessage", ITEMS_PER_MESSAGE),
            ("BytesPerMessage", BYTES_PER_MESSAGE),
        )
    ),
    _s("ChargingStation", "VendorName", "secc", "ReadOnly"),
)


class DeviceModel:
    """The variables of :data:`SPECS`, their values, persistence and the OCPP handlers."""

    def __init__(
        self,
        path: Path | None,
        *,
        initial: Mapping[Key, str] | None = None,
        computed: Mapping[Key, Callable[[], str]] | None = None,
        specs: tuple[VariableSpec, ...] = SPECS,
    ) -> None:
        self.path = path
        self.specs = {s.key: s for s in specs}
        self.components = {s.component for s in specs}
        self.computed = dict(computed or {})
        # checks of a value against the station's state (a variable naming other data)
        self.validators: dict[Key, Callable[[str], str]] = {}
        self.on_change: list[Callable[[Key, str], None]] = []
        self._values = {s.key: s.default for s in specs}
        for key, value in (initial or {}).items():
            self._values[key] = value
        self._explicit: set[Key] = set()  # set by the CSMS or the station: persisted
        if path is not None and path.exists():
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.error("%s: device model not readable (%s); using defaults", path, exc)
            return
        if not isinstance(data, dict):
            log.error("%s: device model is not a JSON object; using defaults", path)
            return
        for name, value in data.items():
            component, _, variable = str(name).partition("/")
            key = (component, variable)
            # a stored spec default is no choice (files of older versions stored every
            # variable): the configured default (``initial``) stays in force then
            if key in self.specs and isinstance(value, str) and value != self.specs[key].default:
                self._values[key] = value
                self._explicit.add(key)

    def _save(self) -> None:
        if self.path is None:
            return
        data = {f"{c}/{v}": self._values[(c, v)] for c, v in sorted(self._explicit)}
        atomic_write(self.path, json.dumps(data, indent=1).encode(), mode=0o600)

    # --- typed access for the station ------------------------------------------------------

    def value(self, component: str, variable: str) -> str:
        key = (component, variable)
        if key in self.computed:
            return self.computed[key]()
        return self._values[key]

    def flag(self, component: str, variable: str) -> bool:
        return self.value(component, variable) == "true"

    def number(self, component: str, variable: str) -> int:
        return int(self.value(component, variable))

    def members(self, component: str, variable: str) -> frozenset[str]:
        """A MemberList variable's members."""
        return frozenset(m for m in self.value(component, variable).split(",") if m)

    def set_local(self, component: str, variable: str, value: str) -> None:
        """Set a value from the station side (no mutability check), persisted."""
        problem = self._check(self.specs[(component, variable)], value)
        if problem:
            raise ValueError(f"{component}.{variable}: {problem}")
        self._values[(component, variable)] = value
        self._explicit.add((component, variable))
        self._save()

    # --- OCPP handlers -----------------------------------------------------------------------

    def _lookup(self, entry: Mapping[str, object]) -> tuple[VariableSpec | None, str | None]:
        component = entry.get("component")
        variable = entry.get("variable")
        cname = component.get("name") if isinstance(component, Mapping) else None
        vname = variable.get("name") if isinstance(variable, Mapping) else None
        # the controllers are station-wide and have no instances: an EVSE or an
        # instance names a component this station does not have
        if cname not in self.components or (
            isinstance(component, Mapping) and ("evse" in component or "instance" in component)
        ):
            return None, "UnknownComponent"
        instance = variable.get("instance") if isinstance(variable, Mapping) else None
        name = f"{vname}/{instance}" if instance is not None else str(vname)
        spec = self.specs.get((str(cname), name))
        if spec is None or "/" in str(vname):
            return None, "UnknownVariable"
        attr = entry.get("attributeType", "Actual")
        if attr != "Actual":
            return None, "NotSupportedAttributeType"
        return spec, None

    @staticmethod
    def _echo(entry: Mapping[str, object], status: str) -> dict[str, object]:
        out: dict[str, object] = {
            "attributeStatus": status,
            "component": entry.get("component"),
            "variable": entry.get("variable"),
        }
        if "attributeType" in entry:
            out["attributeType"] = entry["attributeType"]
        return out

    def get_variables(self, payload: Mapping[str, object]) -> dict[str, object]:
        results = []
        entries = payload.get("getVariableData")
        for entry in entries if isinstance(entries, list) else []:
            spec, problem = self._lookup(entry)
            if spec is None:
                results.append(self._echo(entry, problem or "Rejected"))
            elif spec.mutability == "WriteOnly":
                results.append(self._echo(entry, "Rejected"))
            else:
                out = self._echo(entry, "Accepted")
                out["attributeValue"] = self.value(spec.component, spec.variable)
                results.append(out)
        return {"getVariableResult": results}

    def _check(self, spec: VariableSpec, value: str) -> str | None:
        if spec.data_type == "boolean" and value not in {"true", "false"}:
            return "expected true or false"
        if spec.data_type == "integer":
            if not _INTEGER.fullmatch(value):
                return "expected an integer"
            if not spec.min_value <= int(value) <= spec.max_value:
                return f"must be {spec.min_value}..{spec.max_value}"
        if spec.data_type == "string" and not spec.min_len <= len(value) <= spec.max_len:
            return f"length must be {spec.min_len}..{spec.max_len}"
        if spec.data_type == "MemberList":
            unknown = [m for m in value.split(",") if m and m not in spec.options]
            if unknown:
                return f"not supported: {', '.join(unknown)}"
        return None

    def set_variables(self, payload: Mapping[str, object]) -> dict[str, object]:
        results = []
        changed: list[tuple[Key, str]] = []
        entries = payload.get("setVariableData")
        for entry in entries if isinstance(entries, list) else []:
            spec, problem = self._lookup(entry)
            value = entry.get("attributeValue")
            if spec is None:
                results.append(self._echo(entry, problem or "Rejected"))
                continue
            if spec.mutability == "ReadOnly" or spec.key in self.computed:
                reason = "ReadOnly"
            elif not isinstance(value, str):
                reason = "no attributeValue"
            else:
                reason = self._check(spec, value) or ""
                if not reason and spec.key in self.validators:
                    reason = self.validators[spec.key](value)
            if reason:
                out = self._echo(entry, "Rejected")
                out["attributeStatusInfo"] = {
                    "reasonCode": "ReadOnly" if reason == "ReadOnly" else "InvalidValue",
                    "additionalInfo": reason[:512],
                }
                results.append(out)
                continue
            assert isinstance(value, str)
            changed.append((spec.key, value))
            results.append(self._echo(entry, "RebootRequired" if spec.reboot else "Accepted"))
        if changed:
            before = (dict(self._values), set(self._explicit))
            for key, value in changed:
                self._values[key] = value
                self._explicit.add(key)
            try:  # Accepted only for what survives a restart (B05)
                self._save()
            except OSError as exc:
                log.error("%s: device model not stored (%s): SetVariables Rejected", self.path, exc)
                self._values, self._explicit = before
                saved = {
                    id(r) for r in results if r["attributeStatus"] in ("Accepted", "RebootRequired")
                }
                for r in results:
                    if id(r) in saved:
                        r["attributeStatus"] = "Rejected"
                        r["attributeStatusInfo"] = {
                            "reasonCode": "WriteFailed",
                            "additionalInfo": str(exc)[:512],
                        }
                return {"setVariableResult": results}
            for key, value in changed:
                for callback in self.on_change:
                    callback(key, value)
        return {"setVariableResult": results}

    def report_data(self) -> list[dict[str, object]]:
        """NotifyReport reportData for a full base report."""
        out: list[dict[str, object]] = []
        for spec in self.specs.values():
            attribute: dict[str, object] = {"type": "Actual", "mutability": spec.mutability}
            if spec.mutability != "WriteOnly":
                attribute["value"] = self.value(spec.component, spec.variable)
            name, _, instance = spec.variable.partition("/")
            variable: dict[str, object] = {"name": name}
            if instance:
                variable["instance"] = instance
            out.append(
                {
                    "component": {"name": spec.component},
                    "variable": variable,
                    "variableAttribute": [attribute],
                    "variableCharacteristics": self._characteristics(spec),
                }
            )
        return out

    @staticmethod
    def _characteristics(spec: VariableSpec) -> dict[str, object]:
        """VariableCharacteristicsType: the data type and the limits SetVariables keeps
        (integers: minLimit / maxLimit; strings: maxLimit the length; lists: the values)."""
        out: dict[str, object] = {"dataType": spec.data_type, "supportsMonitoring": False}
        if spec.data_type == "integer":
            out["minLimit"] = spec.min_value
            out["maxLimit"] = spec.max_value
        elif spec.data_type == "string":
            out["maxLimit"] = spec.max_len
        if spec.options:
            out["valuesList"] = ",".join(spec.options)
        return out


def message_limits(dm: DeviceModel, action: str) -> tuple[str, int, int] | None:
    """The list field, ItemsPerMessage and BytesPerMessage that bound a CSMS ``action``
    (DeviceDataCtrlr, instance the action; SendLocalList: LocalAuthListCtrlr's, D01),
    None for an unbounded one."""
    if action == "SendLocalList":
        return (
            LOCAL_LIST_FIELD,
            dm.number(LOCAL_LIST, "ItemsPerMessage"),
            dm.number(LOCAL_LIST, "BytesPerMessage"),
        )
    field = LIMITED.get(action)
    if field is None:
        return None
    return (
        field,
        dm.number(DEVICE, f"ItemsPerMessage/{action}"),
        dm.number(DEVICE, f"BytesPerMessage/{action}"),
    )


def iso15118_defaults(section: object) -> dict[Key, str]:
    """ISO15118Ctrlr SeccId / OrganizationName / CountryName from the ``[ocpp]`` section
    (:class:`secc.config.OcppSection`), the defaults until the CSMS sets them."""
    out: dict[Key, str] = {}
    for attr, variable in (
        ("secc_id", "SeccId"),
        ("organization_name", "OrganizationName"),
        ("country_name", "CountryName"),
    ):
        value = getattr(section, attr, None)
        if isinstance(value, str) and value:
            out[(ISO, variable)] = value
    return out


def apply_device_model(config: ClientConfig, dm: DeviceModel) -> ClientConfig:
    """The client settings the device model governs: BasicAuthPassword (when set),
    MessageTimeout and the reconnect backoff (RetryBackOffWaitMinimum / RandomRange /
    RepeatTimes).  The bridge applies it when it is built and after every change."""
    password = dm.value(SEC, "BasicAuthPassword") or config.basic_auth_password
    return replace(
        config,
        basic_auth_password=password,
        call_timeout=float(max(1, dm.number(COMM, "MessageTimeout"))),
        backoff_min=float(dm.number(COMM, "RetryBackOffWaitMinimum")),
        backoff_random=float(dm.number(COMM, "RetryBackOffRandomRange")),
        backoff_repeat=max(0, dm.number(COMM, "RetryBackOffRepeatTimes")),
    )
