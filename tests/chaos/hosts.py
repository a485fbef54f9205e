"""Hosts for the tests: network namespaces joined by a bridge, CI's stand-in for machines.

Every namespace, link and address lives in namespaces of its own, never in the one the tests
run in, so two runs at once (other worktrees, other CI jobs) cannot collide on a name or an
address. The test process reaches a host from a short-lived thread that has entered that
host's namespace: a socket, or a child process, made there stays there.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

SUBNET = "10.213.1"
PREFIX = 24
CLONE_NEWNET = 0x40000000
T = TypeVar("T")


class HostsUnavailable(Exception):
    """This machine cannot make hosts: the tests skip with this reason."""


def ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise HostsUnavailable(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")


def in_netns(netns: str, work: Callable[[], T]) -> T:
    """Run `work` in a thread that has entered `netns` (setns moves only the calling thread),
    so the sockets it opens and the processes it starts belong to that host."""
    result: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {netns}")
            finally:
                os.close(fd)
            result.append(work())
        except BaseException as exc:  # handed to the caller's thread, re-raised there
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"in-{netns}")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


@dataclass
class Host:
    """One machine: a namespace with one address on the bridge, and the processes on it."""

    netns: str
    port: str  # its link's end on the bridge, in the switch's namespace
    address: str
    mac: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def run(self, *args: str, env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
        """`beanmill ARGS` on this host, started with `ip netns exec`; its output goes to
        `<cwd>/<netns>-<role>-<n>.log` (a pipe nobody reads would block it)."""
        log = cwd / f"{self.netns}-{args[0]}-{len(self.logs)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.netns, sys.executable, "-m", "beanmill", *args],
                cwd=cwd,
                env={**os.environ, "BEANMILL_LOG_FORMAT": "json", **env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        self.logs.append(log)
        return proc

    def ss_kill(self, peer: str) -> None:
        """Destroy this host's TCP sockets to `peer` (`ss -K dst PEER`): the operator's
        remedy for connections of a host that is gone and will never close them."""
        subprocess.run(
            ["ip", "netns", "exec", self.netns, "ss", "-K", "-t", "dst", peer],
            capture_output=True,
            check=True,
        )


class Cluster:
    """Hosts on one bridge (a switch in a namespace of its own); removed whatever happens."""

    def __init__(self) -> None:
        self.tag = f"bm{uuid.uuid4().hex[:8]}"
        self.switch = f"{self.tag}-sw"
        self.hosts: list[Host] = []
        self._made: list[str] = []

    def start(self) -> Cluster:
        if os.geteuid() != 0:
            raise HostsUnavailable("needs root to make network namespaces (ip netns)")
        if shutil.which("ip") is None or shutil.which("ss") is None:
            raise HostsUnavailable("needs iproute2 (ip, ss) to make hosts")
        self._add_netns(self.switch)
        ip("-n", self.switch, "link", "add", "sw", "type", "bridge")
        ip("-n", self.switch, "link", "set", "sw", "up")
        return self

    def add_host(self) -> Host:
        number = len(self.hosts) + 1
        host = Host(
            netns=f"{self.tag}-h{number}",
            port=f"p{number}",
            address=f"{SUBNET}.{number}",
            mac=f"02:00:0a:d5:01:{number:02x}",
        )
        self._plug(host)
        self.hosts.append(host)
        return host

    def _add_netns(self, name: str) -> None:
        ip("netns", "add", name)
        self._made.append(name)

    def _plug(self, host: Host) -> None:
        """A fresh namespace for `host`, its link on the bridge, its address: a boot."""
        self._add_netns(host.netns)
        ip(
            "-n", self.switch, "link", "add", host.port, "type", "veth",
            "peer", "name", "eth0", "address", host.mac, "netns", host.netns,
        )  # fmt: skip
        ip("-n", self.switch, "link", "set", host.port, "master", "sw", "up")
        ip("-n", host.netns, "addr", "add", f"{host.address}/{PREFIX}", "dev", "eth0")
        ip("-n", host.netns, "link", "set", "eth0", "up")
        ip("-n", host.netns, "link", "set", "lo", "up")

    def partition(self, host: Host) -> None:
        """The host's cable is pulled at the switch: nothing gets in or out, and the host
        itself notices nothing (its own link stays up, its routes stay)."""
        ip("-n", self.switch, "link", "set", host.port, "down")

    def heal(self, host: Host) -> None:
        ip("-n", self.switch, "link", "set", host.port, "up")

    def vanish(self, host: Host) -> None:
        """Gone for good: cut off first, so no FIN or RST ever leaves it, then every process
        on it SIGKILLed and its namespace deleted (its link goes with it)."""
        self.partition(host)
        self._kill_all(host)
        self._unplug(host)

    def reboot(self, host: Host) -> None:
        """A restart: every process on it SIGKILLed (its kernel still closes their
        connections), the kernel's state gone with the namespace, then the same address and
        MAC on a fresh one. Processes are the caller's to start again."""
        self._kill_all(host)
        self._unplug(host)
        host.procs.clear()
        self._plug(host)

    def _unplug(self, host: Host) -> None:
        """The link first, by name: a deleted namespace takes its devices with it only
        later, in the kernel's own time, and the name would still be taken."""
        ip("-n", self.switch, "link", "del", host.port)
        subprocess.run(["ip", "netns", "del", host.netns], capture_output=True, check=False)
        self._made.remove(host.netns)

    @staticmethod
    def _kill_all(host: Host) -> None:
        for proc in host.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        pids = subprocess.run(
            ["ip", "netns", "pids", host.netns], capture_output=True, text=True, check=False
        ).stdout.split()
        for pid in pids:  # anything else started there (a server started from a thread)
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                continue

    def close(self) -> None:
        for host in self.hosts:
            if host.netns in self._made:
                self._kill_all(host)
        for name in reversed(self._made):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        self._made.clear()
