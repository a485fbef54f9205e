"""Pipelined beanstalkd commands: many commands, one round trip.

greenstalk sends one command and waits for its reply (about 100 µs on loopback). beanstalkd
answers commands in the order they arrive, so writing N commands at once and then reading
N replies costs one round trip. This works on a greenstalk client's own socket and buffered
reader (greenstalk 2.x keeps them as `_sock` and `_reader`), so replies are never read past
or out of order; every function leaves the connection at a command boundary or raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import BinaryIO, cast

import greenstalk

#: Commands written per flush: bounds the bytes in flight and the replies to read.
CHUNK = 500


def _io(client: greenstalk.Client[bytes]) -> tuple[object, BinaryIO]:
    return client._sock, cast("BinaryIO", client._reader)


def _send(client: greenstalk.Client[bytes], data: bytes) -> BinaryIO:
    sock, reader = _io(client)
    sock.sendall(data)  # type: ignore[attr-defined]
    return reader


def _line(reader: BinaryIO) -> list[bytes]:
    line = reader.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("beanstalkd closed the connection mid-reply")
    return line[:-2].split()


def _unexpected(words: list[bytes]) -> greenstalk.Error:
    """greenstalk's own error for a reply its table knows (OUT_OF_MEMORY, INTERNAL_ERROR: the
    binlog could not be written), so the queue layer treats a pipelined reply like a single
    command's; anything else means the connection is out of step."""
    error = greenstalk.ERROR_RESPONSES.get(words[0] if words else b"")
    if error is not None:
        refusal: greenstalk.Error = error(words[1:])
        return refusal
    return greenstalk.UnknownResponseError(words[0] if words else b"", words[1:])


def _refusal(words: list[bytes]) -> greenstalk.Error:
    """A server's error reply is kept to raise once every reply is read; a reply nobody
    knows is raised at once (the stream is out of step, reading on would wait for nothing)."""
    error = _unexpected(words)
    if isinstance(error, greenstalk.UnknownResponseError):
        raise error
    return error


def _each(client: greenstalk.Client[bytes], verb: bytes, ok: bytes, job_ids: Sequence[int]) -> int:
    """`<verb> <id>` for every id; how many answered `ok` (NOT_FOUND is not an error)."""
    done = 0
    for start in range(0, len(job_ids), CHUNK):
        chunk = job_ids[start : start + CHUNK]
        reader = _send(client, b"".join(b"%b %d\r\n" % (verb, i) for i in chunk))
        refused: greenstalk.Error | None = None
        for _ in chunk:  # every reply is read, so the connection stays in step
            words = _line(reader)
            if words == [ok]:
                done += 1
            elif words != [b"NOT_FOUND"]:
                refused = refused or _refusal(words)
        if refused is not None:
            raise refused
    return done


def delete_many(client: greenstalk.Client[bytes], job_ids: Sequence[int]) -> int:
    """Delete jobs; returns how many were there to delete."""
    return _each(client, b"delete", b"DELETED", job_ids)


def touch_many(client: greenstalk.Client[bytes], job_ids: Sequence[int]) -> int:
    """Touch jobs this connection holds; returns how many it still held."""
    return _each(client, b"touch", b"TOUCHED", job_ids)


#: The first wave of a reserve_ready; each full wave sends this many times more.
FIRST_WAVE = 16
WAVE_GROWTH = 4


def reserve_ready(client: greenstalk.Client[bytes], most: int) -> list[greenstalk.Job[bytes]]:
    """Up to `most` jobs that are ready now, without waiting for more.

    Sent in growing waves, so a nearly empty tube costs a few commands, not `most`, and a
    full one a few round trips."""
    jobs: list[greenstalk.Job[bytes]] = []
    wave = FIRST_WAVE
    while len(jobs) < most:
        asked = min(wave, most - len(jobs))
        got = _reserve_wave(client, asked)
        jobs += got
        if len(got) < asked:
            break
        wave *= WAVE_GROWTH
    return jobs


def _reserve_wave(client: greenstalk.Client[bytes], most: int) -> list[greenstalk.Job[bytes]]:
    reader = _send(client, b"reserve-with-timeout 0\r\n" * most)
    jobs: list[greenstalk.Job[bytes]] = []
    for _ in range(most):
        words = _line(reader)
        if words[:1] == [b"RESERVED"] and len(words) == 3:
            size = int(words[2])
            data = reader.read(size + 2)
            if len(data) != size + 2:
                raise ConnectionError("beanstalkd closed the connection mid-job")
            jobs.append(greenstalk.Job(int(words[1]), data[:-2]))
        elif words not in ([b"TIMED_OUT"], [b"DEADLINE_SOON"]):
            raise _unexpected(words)
    return jobs


def put_many(
    client: greenstalk.Client[bytes], bodies: Sequence[bytes], *, priority: int, ttr: int
) -> list[int]:
    """Put bodies on the used tube; all were acknowledged when this returns."""
    ids: list[int] = []
    for start in range(0, len(bodies), CHUNK):
        chunk = bodies[start : start + CHUNK]
        reader = _send(
            client,
            b"".join(b"put %d 0 %d %d\r\n%b\r\n" % (priority, ttr, len(b), b) for b in chunk),
        )
        too_big = False
        refused: greenstalk.Error | None = None
        for _ in chunk:  # every reply is read, so the connection stays in step
            words = _line(reader)
            if words[:1] == [b"INSERTED"] and len(words) == 2:
                ids.append(int(words[1]))
            elif words == [b"JOB_TOO_BIG"]:
                too_big = True
            else:
                refused = refused or _refusal(words)
        if refused is not None:
            raise refused
        if too_big:
            raise greenstalk.JobTooBigError([])
    return ids
