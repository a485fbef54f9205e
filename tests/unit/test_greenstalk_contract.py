"""What beanmill relies on inside greenstalk, beyond its documented API.

`beanmill.beanstalk.pipeline` writes many commands at once on a client's own socket and reads the
replies through the client's own buffered reader (`Client._sock`, `Client._reader`), and
builds greenstalk's jobs and errors itself. An upgrade that renames any of these must fail
here, naming what moved, not deep inside a pipelined reserve.
"""

from __future__ import annotations

import socket
import tomllib
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import greenstalk
import pytest
from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def greenstalk_pin() -> Requirement:
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    pins = [Requirement(dep) for dep in deps if Requirement(dep).name == "greenstalk"]
    assert len(pins) == 1, f"pyproject.toml should pin greenstalk once, found {pins}"
    return pins[0]


@pytest.fixture
def connected() -> Iterator[tuple[greenstalk.Client[bytes], socket.socket, socket.socket]]:
    """A client made on an already-connected socket (as `beanmill.beanstalk.connection`
    makes them), and the other end of that socket, which stands in for beanstalkd."""
    ours, server = socket.socketpair()
    try:
        client: greenstalk.Client[bytes] = greenstalk.Client(ours, encoding=None)
        yield client, ours, server
        client.close()
    finally:
        ours.close()
        server.close()


def test_installed_greenstalk_is_within_the_pin() -> None:
    pin = greenstalk_pin()
    installed = Version(version("greenstalk"))
    assert installed in pin.specifier, (
        f"greenstalk {installed} is outside the pin {pin}: check this file's contract first"
    )
    assert Version(greenstalk.__version__) == installed


@pytest.mark.parametrize("attribute", ["_sock", "_reader"])
def test_client_keeps_the_private_attributes_pipeline_uses(
    connected: tuple[greenstalk.Client[bytes], socket.socket, socket.socket], attribute: str
) -> None:
    client, _, _ = connected
    assert hasattr(client, attribute), (
        f"greenstalk.Client has no {attribute} any more: beanmill.beanstalk.pipeline uses it"
    )


def test_client_sock_is_the_connected_socket_it_was_given(
    connected: tuple[greenstalk.Client[bytes], socket.socket, socket.socket],
) -> None:
    client, ours, _ = connected
    assert client._sock is ours, "greenstalk.Client._sock is not the socket it was given"
    assert callable(getattr(client._sock, "sendall", None)), "Client._sock has no sendall"


def test_client_reads_replies_through_the_same_reader_as_pipeline(
    connected: tuple[greenstalk.Client[bytes], socket.socket, socket.socket],
) -> None:
    """Both replies arrive in one read; greenstalk takes the first, and the second must still
    be in `_reader`, or pipelined reads and greenstalk's own would get out of step."""
    client, _, server = connected
    server.sendall(b"USING other\r\nRESERVED 7 2\r\nhi\r\n")
    client.use("other")
    assert server.recv(100) == b"use other\r\n"
    reader = client._reader
    for method in ("readline", "read"):
        assert callable(getattr(reader, method, None)), f"Client._reader has no {method}()"
    assert reader.readline() == b"RESERVED 7 2\r\n"
    assert reader.read(4) == b"hi\r\n"


def test_jobs_and_errors_are_built_the_way_pipeline_builds_them() -> None:
    job = greenstalk.Job(7, b"body")
    assert (job.id, job.body) == (7, b"body"), "greenstalk.Job(id, body) changed"
    error = greenstalk.UnknownResponseError(b"WHAT", [b"now"])
    assert (error.status, error.values) == (b"WHAT", [b"now"]), "UnknownResponseError changed"
    assert isinstance(greenstalk.JobTooBigError([]), greenstalk.BeanstalkdError)
