"""The checks ``secc run`` makes before it starts, shared with ``secc run --check`` and
``secc commission`` so that nothing they call OK fails at start.

The configuration file has been loaded and its values checked (:mod:`secc.config`); these
checks look at the machine the station runs on: each EVSE's network interface exists and
carries the configured address, the fixed TCP and UDP ports are free, the HAL backend's
extra is installed and its devices exist and can be opened, the certificate store exists,
each SECC key (and the CSMS client key with security profile 3) can be read, decrypts
with ``certs.key_password_file`` and matches its certificate, the password files are
there and not empty, and the state and trace directories can be written.

Each failure is a :class:`Problem` that names the dotted key of the file, its value, the
EVSE and the cause, printed as one line::

    secc.toml: evse[0].interface = "eth9" (EVSE DE*ABC*E1234567*1): no such network interface

File access is checked as the user the station runs as: the current user when ``secc
run`` starts; for ``--check`` and ``secc commission`` run as root, the service user
(``secc``, the ``User=`` of the shipped units, with its groups and the units'
``SupplementaryGroups=dialout``).
"""

from __future__ import annotations

import contextlib
import errno
import grp
import ipaddress
import os
import pwd
import socket
import ssl
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from hal.records import record
from secc.config import EvseSection, StationConfig

if TYPE_CHECKING:
    from secc.aio.tls import LoadedChains

SERVICE_USER = "secc"  # User= of systemd/secc.service
SERVICE_GROUPS = ("dialout",)  # SupplementaryGroups= of systemd/secc.service


@record
class Problem:
    """One reason the station would not start."""

    key: str  # the dotted key of the file: "evse[0].interface", "certs.key_password_file"
    value: object  # its value (None: the key is not in the file)
    cause: str
    evse: str | None = None  # the EVSE ID, for keys under [[evse]]
    fix: str = ""  # what to do (commission shows it)

    def line(self, source: str) -> str:
        """``FILE: key = value (EVSE id): cause`` on one line."""
        where = self.key if self.value is None else f"{self.key} = {_toml(self.value)}"
        if self.evse is not None:
            where += f" (EVSE {self.evse})"
        return f"{source}: {where}: {self.cause}"


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    import json  # (here: only a problem line needs it; not on the start path)

    return json.dumps(str(value), ensure_ascii=False)


@record
class User:
    """Whose file access is checked: ``None`` fields mean the current process."""

    name: str
    uid: int
    gids: frozenset[int]

    @classmethod
    def named(cls, name: str) -> User:
        """The user ``name`` with its groups and the service's supplementary groups;
        KeyError when there is no such user."""
        entry = pwd.getpwnam(name)
        gids = set(os.getgrouplist(name, entry.pw_gid))
        for group in SERVICE_GROUPS:
            with contextlib.suppress(KeyError):
                gids.add(grp.getgrnam(group).gr_gid)
        return cls(name, entry.pw_uid, frozenset(gids))


def service_user(name: str | None = None) -> User | None:
    """The user whose access to files is checked: ``name`` if given (KeyError when it
    does not exist); else, for root, the service user ``secc`` when it exists; else
    ``None`` (the current process, as ``secc run`` itself)."""
    if name is not None:
        return User.named(name)
    if os.geteuid() == 0:
        with contextlib.suppress(KeyError):
            return User.named(SERVICE_USER)
    return None


def _who(user: User | None) -> str:
    if user is not None:
        return f"user {user.name}"
    try:
        return f"user {pwd.getpwuid(os.geteuid()).pw_name}"
    except KeyError:
        return f"uid {os.geteuid()}"


def _may(path: Path, mode: int, user: User | None) -> bool:
    """Whether ``user`` (None: this process) may access ``path`` (os.R_OK / os.W_OK ...),
    the directories on the way included."""
    if user is None:
        return os.access(path, mode)
    if user.uid == 0:
        return True
    try:
        path = path.absolute()
        for parent in reversed(path.parents):
            if not _bits(parent.stat(), os.X_OK, user):
                return False
        return _bits(path.stat(), mode, user)
    except OSError:
        return False


def _bits(st: os.stat_result, mode: int, user: User) -> bool:
    if st.st_uid == user.uid:
        shift = 6
    elif st.st_gid in user.gids:
        shift = 3
    else:
        shift = 0
    granted = (st.st_mode >> shift) & 0o7
    return granted & mode == mode


def _writable_dir(path: Path, user: User | None) -> str | None:
    """Why the station cannot write in (or create) directory ``path``; None: it can."""
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing != path:
        if not existing.is_dir():
            return f"cannot be created: {existing} is not a directory"
        if not _may(existing, os.W_OK | os.X_OK, user):
            return f"does not exist and {_who(user)} cannot create it in {existing}"
        return None
    if not path.is_dir():
        return "is not a directory"
    if not _may(path, os.W_OK | os.X_OK, user):
        return f"{_who(user)} cannot write in it"
    return None


def _keylog(path: Path, user: User | None) -> str | None:
    """TLS appends to the key log file; nothing creates its directory."""
    if path.exists():
        if path.is_dir():
            return "is a directory, not a file"
        if not _may(path, os.W_OK, user):
            return f"{_who(user)} cannot write it (permission denied)"
        return None
    if not path.parent.is_dir():
        return f"no such directory {path.parent}"
    if not _may(path.parent, os.W_OK | os.X_OK, user):
        return f"{_who(user)} cannot create it in {path.parent}"
    return None


def _readable_file(path: Path, user: User | None, what: str = "") -> str | None:
    """Why the station cannot read file ``path``; None: it can."""
    prefix = f"{what} {path}: " if what else ""
    if not path.exists():
        return f"{prefix}no such file"
    if path.is_dir():
        return f"{prefix}is a directory, not a file"
    if not _may(path, os.R_OK, user):
        return f"{prefix}{_who(user)} cannot read it (permission denied)"
    return None


# --- the checks ------------------------------------------------------------------------------


def check_station(
    config: StationConfig,
    *,
    user: User | None = None,
    ports: bool = True,
    loaded: LoadedChains | None = None,
) -> list[Problem]:
    """Every problem that would stop ``secc run`` with ``config`` on this machine (file
    access as ``user``; ``ports``: also try the fixed ports).  ``loaded`` receives each
    SECC chain's TLS context as its check loaded it (:data:`secc.aio.tls.LoadedChains`:
    ``secc run`` serves them instead of loading every chain and key again)."""
    problems = [*check_files(config, user, loaded)]
    chains = served_chains(config)
    for i in range(len(config.evse)):
        problems += check_evse(config, i, user=user, ports=ports, chains=chains)
    return problems


def check_evse(
    config: StationConfig,
    index: int,
    *,
    user: User | None = None,
    ports: bool = True,
    chains: tuple[bool, bool] | None = None,
) -> list[Problem]:
    """The problems of ``[[evse]]`` number ``index``: interface, address, something to
    serve, ports, HAL.  ``chains``: :func:`served_chains` (read when not given)."""
    evse = config.evse[index]
    iso2, iso20 = served_chains(config) if chains is None else chains
    tls = iso2 or (iso20 and evse.offers_iso20)  # as secc.aio.tls.TlsSelector.usable
    problems = list(_network(evse, index, tls=tls, ports=ports))
    problems += _hal(evse, index, user)
    return problems


def served_chains(config: StationConfig) -> tuple[bool, bool]:
    """Whether the station will serve TLS 1.2 (an ISO 15118-2 SECC chain) and TLS 1.3 (an
    ISO 15118-20 one): a chain is served when an installed V2G root issued it, as the
    runtime decides at start (unreadable chains are the store check's problems)."""
    from certs.files import CertsError, StoreFiles, is_iso20_use, is_secc_use

    root = config.certs.store
    if root is None or not root.is_dir():
        return False, False
    iso2 = iso20 = False
    try:  # (read without cryptography: certs.der)
        store = StoreFiles(root, key_password_file=config.certs.key_password_file)
        subjects = {r.subject for r in store.root_certs("v2g")}
        for use in store.leaf_uses():
            twenty = is_iso20_use(use)
            if not is_secc_use(use):
                continue
            try:
                chain = store.leaf_certs(use)
            except (CertsError, OSError):
                continue
            if chain and chain[-1].issuer in subjects:
                iso20 = iso20 or twenty
                iso2 = iso2 or not twenty
    except (CertsError, OSError):
        return False, False
    return iso2, iso20


def _network(evse: EvseSection, i: int, *, tls: bool, ports: bool) -> Iterator[Problem]:
    at = f"evse[{i}]"
    if not tls and evse.tcp_port < 0:
        yield Problem(
            f"{at}.tcp_port",
            evse.tcp_port,
            "nothing to serve: plain TCP is off and TLS needs a SECC chain under an installed "
            "V2G root in certs.store (none)",
            evse.evse_id,
            "install the SECC chain (`secc certs install --leaf v2g CHAIN --key KEY`) and its "
            "V2G root, or set tcp_port = 0 for plain TCP",
        )
    name = evse.interface
    scope = 0
    if name is not None:
        try:
            scope = socket.if_nametoindex(name)
        except OSError:
            yield Problem(
                f"{at}.interface",
                name,
                "no such network interface",
                evse.evse_id,
                "check the PLC modem's driver (qcaspi, USB) and the interface name (`ip link`)",
            )
            return
    address = ipaddress.IPv6Address(evse.address)
    if address.is_link_local and name is None:
        yield Problem(
            f"{at}.address",
            evse.address,
            "a link-local address needs the interface it is on (set interface)",
            evse.evse_id,
        )
        return
    problem = _address(evse, at, address, scope)
    if problem is not None:
        yield problem
        return
    if not ports:
        return
    for key, port in (("tls_port", evse.tls_port if tls else -1), ("tcp_port", evse.tcp_port)):
        if port > 0:
            cause = _tcp_port(evse, port)
            if cause is not None:
                yield Problem(f"{at}.{key}", port, cause, evse.evse_id, _port_fix(port, "t"))
    if evse.sdp_port > 0:
        cause = _udp_port(evse)
        if cause is not None:
            yield Problem(
                f"{at}.sdp_port", evse.sdp_port, cause, evse.evse_id, _port_fix(evse.sdp_port, "u")
            )


def _address(
    evse: EvseSection, at: str, address: ipaddress.IPv6Address, scope: int
) -> Problem | None:
    """The address must be one of this machine's (with a link-local one: of the
    interface): what the V2G servers bind and SDP offers."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        sock.bind((str(address), 0, 0, scope if address.is_link_local else 0))
    except OSError as exc:
        if exc.errno != errno.EADDRNOTAVAIL:
            return Problem(f"{at}.address", evse.address, _cause(exc), evse.evse_id)
        where = f"interface {evse.interface}" if evse.interface else "this machine"
        return Problem(
            f"{at}.address",
            evse.address,
            f"not an address of {where} (or still tentative: duplicate address detection)",
            evse.evse_id,
            f"`ip -6 addr show {evse.interface or ''}`".replace(" `", "`")
            + " lists the addresses; configure one of them",
        )
    finally:
        sock.close()
    if evse.interface is not None and not address.is_link_local:
        on = _interfaces_of(address)
        if on is not None and evse.interface not in on:
            return Problem(
                f"{at}.address",
                evse.address,
                f"not an address of interface {evse.interface} (it is on {', '.join(on)})",
                evse.evse_id,
            )
    return None


def _interfaces_of(address: ipaddress.IPv6Address) -> list[str] | None:
    """The interfaces that carry ``address`` (None: the kernel's table is not readable)."""
    try:
        table = Path("/proc/self/net/if_inet6").read_text()
    except OSError:
        return None
    found = []
    for line in table.splitlines():
        fields = line.split()
        if len(fields) >= 6 and ipaddress.IPv6Address(bytes.fromhex(fields[0])) == address:
            found.append(fields[5])
    return found


def _tcp_port(evse: EvseSection, port: int) -> str | None:
    """Bind and listen as the V2G server does (secc.aio.v2g_server), then let go."""
    host = evse.address
    if evse.interface and ipaddress.IPv6Address(host).is_link_local:
        host = f"{host}%{evse.interface}"
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if evse.interface:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, evse.interface.encode())
        sock.bind(socket.getaddrinfo(host, port, socket.AF_INET6, socket.SOCK_STREAM)[0][4])
        sock.listen(1)
    except OSError as exc:
        return _cause(exc, port=port, proto="TCP")
    finally:
        sock.close()
    return None


def _udp_port(evse: EvseSection) -> str | None:
    """Open the SDP socket as the SDP server does, then close it."""
    from secc.aio.sdp_server import open_sdp_socket

    try:
        sock = open_sdp_socket(
            evse.interface,
            host="::" if evse.interface else evse.address,
            port=evse.sdp_port,
        )
    except OSError as exc:
        return _cause(exc, port=evse.sdp_port, proto="UDP")
    sock.close()
    return None


def _port_fix(port: int, proto: str) -> str:
    return (
        f"find what holds it (`ss -{proto}lpn sport = :{port}`) and stop it, or pick another port"
    )


def _cause(exc: OSError, *, port: int | None = None, proto: str = "") -> str:
    """An OSError as a cause an installer understands (no ``[Errno ...]``)."""
    if exc.errno == errno.EADDRINUSE:
        if port is None:
            return "a port it binds is in use by another program"
        return f"{proto} port {port} is in use by another program"
    if exc.errno == errno.EACCES and port is not None and port < 1024:
        return f"{proto} port {port} is below 1024: it needs CAP_NET_BIND_SERVICE"
    if exc.errno == errno.EPERM:
        return f"not permitted ({exc.strerror}): binding to an interface may need CAP_NET_RAW"
    if exc.errno == errno.ENODEV:
        return "no such network interface"
    return (exc.strerror or str(exc)).rstrip(".").lower()


# --- HAL ---------------------------------------------------------------------------------------


def _hal(evse: EvseSection, i: int, user: User | None) -> list[Problem]:
    from hal import registry
    from hal.types import CpState

    at = f"evse[{i}].hal"
    problems: list[Problem] = []
    names = [n for n in (evse.hal.backend, evse.hal.plc) if n is not None]
    # the installed plug-ins are scanned (slow: importlib.metadata) only for a name that
    # is not built in; a plug-in cannot shadow a built-in, so the answer is the same
    known = registry.BUILTIN if set(names) <= registry.BUILTIN.keys() else registry.available()
    for key, name in (("backend", evse.hal.backend), ("plc", evse.hal.plc)):
        info = known.get(name) if name is not None else None
        if info is None:
            continue  # the loader refused unknown names already
        missing = registry.missing_dependency(info)
        if missing is not None:
            problems.append(
                Problem(
                    f"{at}.{key}",
                    name,
                    f"needs the Python package {missing!r}, which is not installed: "
                    f"pip install 'secc[{info.extra}]'",
                    evse.evse_id,
                )
            )
    options = dict(evse.hal_options)
    backend = evse.hal.backend
    if backend == "serial-mcu":
        port = options.get("port")
        if not isinstance(port, str):
            problems.append(
                Problem(
                    f"{at}.options.port",
                    port,
                    'the serial-mcu backend needs port = "/dev/ttyXXX" (the MCU\'s UART)',
                    evse.evse_id,
                )
            )
        else:
            cause = _device(Path(port), user, "serial port")
            if cause is not None:
                problems.append(Problem(f"{at}.options.port", port, cause, evse.evse_id))
        for name in ("baudrate", "heartbeat_timeout_ms"):
            value = options.get(name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value <= 0
            ):
                problems.append(
                    Problem(
                        f"{at}.options.{name}", value, "must be a positive integer", evse.evse_id
                    )
                )
    elif backend == "gpiod":
        chip = str(options.get("chip", "/dev/gpiochip0"))
        if chip.startswith("/"):
            cause = _device(Path(chip), user, "GPIO chip")
            if cause is not None:
                problems.append(Problem(f"{at}.options.chip", chip, cause, evse.evse_id))
        pwm = Path(str(options.get("pwm_chip", "/sys/class/pwm/pwmchip0")))
        if not pwm.is_dir():
            problems.append(
                Problem(f"{at}.options.pwm_chip", str(pwm), "no such PWM chip", evse.evse_id)
            )
        problems += [
            Problem(f"{at}.options.{name}", value, cause, evse.evse_id)
            for name, value, cause in _gpiod_values(options, user)
        ]
    elif backend == "simulated" and "ev_state" in options:
        states = [s.value for s in CpState]
        if str(options["ev_state"]) not in states:
            problems.append(
                Problem(
                    f"{at}.options.ev_state",
                    options["ev_state"],
                    f"not a control pilot state (one of {', '.join(states)})",
                    evse.evse_id,
                )
            )
    if evse.hal.plc == "slac":
        plc_options = dict(evse.hal_plc_options)
        interface = plc_options.get("interface")
        if not isinstance(interface, str):
            problems.append(
                Problem(
                    f"{at}.plc_options.interface",
                    interface,
                    "the slac backend needs interface = the PLC modem's interface",
                    evse.evse_id,
                )
            )
        else:
            try:
                socket.if_nametoindex(interface)
            except OSError:
                problems.append(
                    Problem(
                        f"{at}.plc_options.interface",
                        interface,
                        "no such network interface",
                        evse.evse_id,
                    )
                )
            else:
                cause = _raw_socket(interface)
                if cause is not None:
                    problems.append(Problem(f"{at}.plc", "slac", cause, evse.evse_id))
        problems += [
            Problem(f"{at}.plc_options.{name}", value, cause, evse.evse_id)
            for name, value, cause in _slac_values(plc_options)
        ]
    return problems


def _gpiod_values(
    options: Mapping[str, object], user: User | None
) -> Iterator[tuple[str, object, str]]:
    """The values the gpiod backend checks when it opens (hal.backends.gpiod_backend)."""
    for name in ("contactor_out", "contactor_fb"):
        if name not in options:
            yield name, None, "the gpiod backend needs contactor_out and contactor_fb"
    for name in (
        "contactor_out",
        "contactor_fb",
        "lock_out",
        "lock_fb",
        "rcd_in",
        "pwm_channel",
        "pwm_period_ns",
    ):
        value = options.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            yield name, value, "must be an integer"
    adc = options.get("cp_adc")
    if not isinstance(adc, str):
        yield "cp_adc", adc, "the gpiod backend needs cp_adc (the IIO file of the CP plateau)"
    else:
        cause = _readable_file(Path(adc), user)
        if cause is not None:
            yield "cp_adc", adc, cause
    for name in ("cp_adc_scale", "cp_adc_offset"):
        value = options.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            yield name, value, "must be a number"


def _slac_values(options: Mapping[str, object]) -> Iterator[tuple[str, object, str]]:
    """The ranges the slac backend checks when it opens (hal.backends.slac.link)."""
    init = options.get("slac_init_s", 50.0)
    if isinstance(init, bool) or not isinstance(init, (int, float)) or not 20 <= init <= 50:
        yield "slac_init_s", init, "must lie in 20..50 s (TT_EVSE_SLAC_init)"
    modem = str(options.get("modem_mac", "00:b0:52:00:00:01"))
    try:
        size = len(bytes.fromhex(modem.replace(":", "")))
    except ValueError:
        size = 0
    if size != 6:
        yield "modem_mac", modem, "must be six hex bytes, e.g. 00:b0:52:00:00:01"
    sessions = options.get("max_sessions", 8)
    if isinstance(sessions, bool) or not isinstance(sessions, int) or not 1 <= sessions <= 64:
        yield "max_sessions", sessions, "must lie in 1..64"


def _raw_socket(interface: str) -> str | None:
    """SLAC runs over AF_PACKET on the modem's interface: that needs CAP_NET_RAW."""
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x88E1))
    except PermissionError:
        return (
            f"SLAC on {interface} needs a raw socket (AF_PACKET): CAP_NET_RAW (the shipped "
            "units grant it)"
        )
    except OSError as exc:
        return f"SLAC on {interface}: cannot open a raw socket: {_cause(exc)}"
    sock.close()
    return None


def _device(path: Path, user: User | None, what: str) -> str | None:
    """Why the station cannot open device ``path``; None: it can.  A serial port is
    opened (without reading or configuring it) to see that it is a terminal device, as
    pyserial will; the board itself is not talked to (a running station may own it:
    ``secc commission``'s HAL self-test does that)."""
    if not path.exists():
        return f"no such {what}"
    if path.is_dir():
        return f"is a directory, not a {what}"
    if not _may(path, os.R_OK | os.W_OK, user):
        return f"{_who(user)} cannot open it for reading and writing (permission denied)"
    if what == "serial port":
        try:
            fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_NOCTTY)
        except OSError as exc:
            return f"cannot be opened: {_cause(exc)}"
        try:
            if not os.isatty(fd):
                return "not a serial port (not a terminal device)"
        finally:
            os.close(fd)
    elif not stat.S_ISCHR(path.stat().st_mode):
        return f"not a {what} (not a character device)"
    return None


# --- files: store, keys, passwords, directories ------------------------------------------------


def check_files(
    config: StationConfig, user: User | None = None, loaded: LoadedChains | None = None
) -> list[Problem]:
    """The certificate store, its keys, the password files and the directories
    (``loaded``: as for :func:`check_station`)."""
    problems: list[Problem] = []
    st = config.station
    for key, directory in (("station.trace_dir", st.trace_dir),):
        if directory is not None:
            cause = _writable_dir(directory, user)
            if cause is not None:
                problems.append(Problem(key, str(directory), cause))
    if st.tls_keylog is not None:
        cause = _keylog(st.tls_keylog, user)
        if cause is not None:
            problems.append(Problem("station.tls_keylog", str(st.tls_keylog), cause))
    if config.ocpp is not None:
        o = config.ocpp
        cause = _writable_dir(o.state_dir, user)
        if cause is not None:
            problems.append(Problem("ocpp.state_dir", str(o.state_dir), cause))
        if o.basic_auth_password_file is not None:
            cause = _secret_file(o.basic_auth_password_file, user)
            if cause is not None:
                problems.append(
                    Problem("ocpp.basic_auth_password_file", str(o.basic_auth_password_file), cause)
                )
    problems += _store(config, user, loaded)
    return problems


def _secret_file(path: Path, user: User | None) -> str | None:
    cause = _readable_file(path, user)
    if cause is not None:
        return cause
    try:
        if not path.read_bytes().strip():
            return "the file is empty"
    except OSError as exc:
        return _cause(exc)
    return None


def _store(
    config: StationConfig, user: User | None, loaded: LoadedChains | None = None
) -> list[Problem]:
    from certs.files import StoreError, StoreFiles, is_secc_use

    section = config.certs
    if section.store is None:
        return []
    root = section.store
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "no such directory"
        return [
            Problem(
                "certs.store",
                str(root),
                what,
                fix="create the store (`secc certs init --store DIR`) or fix certs.store",
            )
        ]
    if not _may(root, os.R_OK | os.X_OK, user):
        return [Problem("certs.store", str(root), f"{_who(user)} cannot read it")]
    password: bytes | None = None
    if section.key_password_file is not None:
        cause = _secret_file(section.key_password_file, user)
        if cause is not None:
            return [Problem("certs.key_password_file", str(section.key_password_file), cause)]
        password = section.key_password_file.read_bytes().rstrip(b"\r\n")
    store = StoreFiles(root, key_password_file=section.key_password_file)
    installed = store.leaf_uses()
    uses = [u for u in installed if is_secc_use(u)]
    # profile 3: the client certificate, if there is one (without it the station starts
    # and its OCPP link waits; commission's certs.csms check says so)
    if config.ocpp is not None and config.ocpp.security_profile == 3 and "csms" in installed:
        uses.append("csms")
    problems = []
    for use in uses:
        try:
            certfile, keyfile = store.leaf_paths(use)
        except StoreError as exc:
            problems.append(Problem("certs.store", str(root), f"leaf {use}: {exc}"))
            continue
        keep = loaded if is_secc_use(use) else None  # (not the CSMS client certificate)
        cause = _leaf(
            certfile, keyfile, password, user, secret=section.key_password_file, keep=keep
        )
        if cause is not None:
            problems.append(
                Problem(
                    "certs.store",
                    str(root),
                    f"{use} chain: {cause}",
                    fix="install a matching chain and key (`secc certs install --leaf USE "
                    "CHAIN --key KEY`), give the service user read access, or fix "
                    "certs.key_password_file",
                )
            )
    return problems


def _leaf(
    certfile: Path,
    keyfile: Path,
    password: bytes | None,
    user: User | None,
    *,
    secret: Path | None,
    keep: LoadedChains | None = None,
) -> str | None:
    """Why the station cannot serve TLS with this chain and key; None: it can (and
    ``keep`` gets the context with them loaded, under ``(str(certfile), str(keyfile))``)."""
    for path, what in ((certfile, "certificate"), (keyfile, "private key")):
        cause = _readable_file(path, user, what)
        if cause is not None:
            return cause
    # no cryptography here (issue 17: it costs more than the start-up budget): the chain
    # is read with certs.der, and ssl.load_cert_chain decrypts the key and proves that it
    # matches the leaf (OpenSSL's KEY_VALUES_MISMATCH), as the TLS server will load it
    from certs.der import Cert, pem_blocks
    from certs.files import CertsError

    try:
        data = keyfile.read_bytes()
        blocks = pem_blocks(certfile.read_bytes())
        if not blocks:
            return f"certificate {certfile}: not a PEM certificate chain (no certificate in it)"
        for block in blocks:
            Cert(block)
    except OSError as exc:
        return f"{exc.filename}: {_cause(exc)}"
    except CertsError as exc:
        return f"certificate {certfile}: not a PEM certificate chain ({exc})"
    asked = False

    def key_password() -> bytes:
        nonlocal asked
        asked = True
        if password is None:
            raise _Encrypted
        return password

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(str(certfile), str(keyfile), password=key_password)
    except _Encrypted:
        return f"private key {keyfile}: it is encrypted and certs.key_password_file is not set"
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            return f"private key {keyfile} does not match the certificate {certfile}"
        if asked or (password is not None and b"-----BEGIN" in data):
            return (
                f"private key {keyfile}: does not decrypt with the password in {secret} "
                "(wrong password, or not a key)"
            )
        if b"-----BEGIN" not in data and data:
            return f"private key {keyfile}: not in PEM form (TLS needs a PEM key)"
        if b"PRIVATE KEY-----" in data or not data:
            return f"private key {keyfile}: not a private key in PEM or DER form"
        return f"TLS cannot load {certfile} with {keyfile}: {exc.reason or exc}"
    if keep is not None:
        keep[str(certfile), str(keyfile)] = context
    return None


class _Encrypted(Exception):  # noqa: N818 - raised by the password callback of _leaf
    """The key is encrypted and no password is configured."""


def describe(exc: BaseException) -> str:
    """A start-up exception as one readable cause (for failures no check foresaw)."""
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    if isinstance(exc, OSError):
        text = _cause(exc)
        if exc.filename:
            return f"{exc.filename}: {text}"
        return text
    return str(exc) or type(exc).__name__
