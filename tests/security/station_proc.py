"""``secc run`` as a subprocess for the flood tests: a generated configuration on
loopback (TLS and TCP ports, simulated board), its ports from the ready line, its file
descriptors and resident memory from /proc."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

from tests.security.peers import raw_socket_count, rss_kib

CONFIG = """
[station]
trace_dir = "{traces}"
{station_extra}
[certs]
store = "{store}"
[[evse]]
evse_id = "DE*ABC*E1234567*1"
address = "::1"
tls_port = 0
tcp_port = 0
sdp_port = 0
energy_modes = ["AC_three_phase_core", "DC_extended"]
{evse_extra}
[evse.hal]
backend = "simulated"
control = "none"
[evse.hal.options]
ev_state = "C"
"""
READY = re.compile(r"EVSE (\S+) ready on (\S+) .*SDP port (\d+), tls port (\d+), tcp port (\d+)")


class StationProcess:
    """Start with :meth:`start`, stop with :meth:`stop` (SIGTERM, then kill)."""

    def __init__(
        self, directory: Path, pki_dir: Path, *, station_extra: str = "", evse_extra: str = ""
    ) -> None:
        self.directory = directory
        self.traces = directory / "traces"
        self.config = directory / "secc.toml"
        self.config.write_text(
            CONFIG.format(
                traces=self.traces,
                store=pki_dir / "station",
                station_extra=station_extra,
                evse_extra=evse_extra,
            )
        )
        self.log = directory / "stderr.txt"
        self.proc: subprocess.Popen[bytes] | None = None
        self.sdp_port = self.tls_port = self.tcp_port = 0

    def start(self, nofile: int | None = None, env: dict[str, str] | None = None) -> None:
        def limit() -> None:  # in the child, before exec
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        with self.log.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "secc.cli.main", "run", "--config", str(self.config)],
                stderr=err,
                stdout=subprocess.DEVNULL,
                preexec_fn=limit,  # noqa: PLW1509 - no threads in the test process here
                env={**os.environ, **(env or {})},
            )
        end = time.monotonic() + 30
        while time.monotonic() < end:
            found = READY.search(self.log.read_text())
            if found:
                ports = (int(found.group(i)) for i in (3, 4, 5))
                self.sdp_port, self.tls_port, self.tcp_port = ports
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"secc run did not get ready: {self.log.read_text()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def fds(self) -> int:
        return raw_socket_count(self.pid)

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    def set_nofile(self, n: int) -> None:
        """Change the running station's soft RLIMIT_NOFILE (prlimit(2))."""
        _soft, hard = resource.prlimit(self.pid, resource.RLIMIT_NOFILE)
        resource.prlimit(self.pid, resource.RLIMIT_NOFILE, (n, hard))

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def text(self) -> str:
        return self.log.read_text()
