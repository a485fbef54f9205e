"""Signed bodies against a real beanstalkd: what a stranger puts on a tube without the secret
is buried, never mapped or applied, and the totals stay exact."""

from __future__ import annotations

import json
import signal
import stat
from pathlib import Path

import greenstalk
import pytest

from beanmill import exitcodes
from beanmill.beanstalk.server import Beanstalkd
from beanmill.signing import Signer, load_secret
from beanmill.wire import Batch, encode_batch
from specs.sums import squares_answer
from support import Procs, beanstalkd_counts, finish, spec_ref, start_roles, status, wait_for

SQUARES = spec_ref("sums:Squares")
WORDS = spec_ref("sums:Words")
N = 1000


def make_secret(tmp_path: Path, content: str = "a shared secret\n", mode: int = 0o600) -> Path:
    path = tmp_path / "secret"
    path.write_text(content)
    path.chmod(mode)
    return path


def put(server: Beanstalkd, tube: str, *bodies: bytes) -> None:
    client = greenstalk.Client((server.host, server.port), encoding=None, use=tube)
    try:
        for body in bodies:
            client.put(body)
    finally:
        client.close()


def buried(server: Beanstalkd, tube: str) -> int:
    return beanstalkd_counts(server, tube).get("current-jobs-buried", 0)


def test_a_forged_partial_for_a_real_batch_is_buried_and_the_total_is_exact(
    procs: Procs, beanstalkd: Beanstalkd, tmp_path: Path
) -> None:
    """Without signing, a partial put first for a real batch ID wins and the real one is
    dropped as a duplicate. With a secret, the forgery (unsigned, or signed with another
    key) is buried and the real partial is applied."""
    env = {"BEANMILL_SECRET_FILE": str(make_secret(tmp_path)), "SUMS_ITEMS": str(N)}
    forged = b'{"v":1,"type":"partial","batches":["s50-0"],"items":50,"value":999999999}'
    put(beanstalkd, "squares.results", forged, Signer(b"a guess").sign(forged))
    ckpt = tmp_path / "ck.sqlite"
    start_roles(procs, beanstalkd.address, ckpt, SQUARES, env=env)
    wait_for(lambda: ckpt.exists() and status(ckpt)["complete"], timeout=60, what="complete")
    snap = status(ckpt)
    assert snap["total"] == squares_answer(N)
    assert snap["items"] == N
    assert buried(beanstalkd, "squares.results") == 2


def test_a_forged_end_record_does_not_complete_the_job(
    procs: Procs, beanstalkd: Beanstalkd, tmp_path: Path
) -> None:
    env = {"BEANMILL_SECRET_FILE": str(make_secret(tmp_path)), "SUMS_ITEMS": str(N)}
    put(beanstalkd, "squares.results", b'{"v":1,"type":"end","batches":0,"items":0}')
    ckpt = tmp_path / "ck.sqlite"
    reducer = procs.reducer(SQUARES, beanstalkd.address, ckpt, env=env)
    wait_for(lambda: buried(beanstalkd, "squares.results") == 1, what="the forged end buried")
    assert reducer.poll() is None, "the reducer goes on waiting for the real work"
    assert not ckpt.exists() or not status(ckpt)["complete"]
    reducer.send_signal(signal.SIGTERM)
    rc, _, err = finish(reducer)
    assert rc == 0, err
    assert "bad signature" in err


def test_unsigned_bare_ids_are_buried_unless_accept_unsigned_ids(
    procs: Procs, beanstalkd: Beanstalkd, tmp_path: Path
) -> None:
    secret = make_secret(tmp_path)
    env = {"BEANMILL_SECRET_FILE": str(secret)}
    signer = load_secret(secret)
    # A foreign producer that signs sends the object form; a bare ID cannot carry a tag.
    put(beanstalkd, "words.items", b"1", b"2", b"3")
    put(beanstalkd, "words.items", signer.sign(encode_batch(Batch("x-0001", ("10", 20)))))
    ckpt = tmp_path / "ck.sqlite"
    address = ["--beanstalkd", beanstalkd.address]
    procs.reducer(WORDS, beanstalkd.address, ckpt, env=env)
    strict = procs.beanmill("consumer", WORDS, *address, env=env)
    wait_for(
        lambda: (
            buried(beanstalkd, "words.items") == 3 and ckpt.exists() and status(ckpt)["items"] == 2
        ),
        what="bare IDs buried, the signed batch counted",
    )
    assert status(ckpt)["total"] == 30
    strict.send_signal(signal.SIGTERM)
    rc, _, err = finish(strict)
    assert rc == 0, err
    assert err.count("bad signature") >= 3

    procs.beanmill("consumer", WORDS, *address, "--accept-unsigned-ids", env=env)
    client = greenstalk.Client((beanstalkd.host, beanstalkd.port), encoding=None, use="words.items")
    assert client.kick(10) == 3
    client.close()
    wait_for(lambda: status(ckpt)["items"] == 5, what="the kicked bare IDs counted")
    assert status(ckpt)["total"] == 36


@pytest.mark.parametrize("role", ["producer", "consumer", "reducer", "run"])
@pytest.mark.parametrize("how", ["flag", "env", "config"])
def test_a_secret_file_readable_by_others_is_refused_with_one_line(
    procs: Procs, tmp_path: Path, role: str, how: str
) -> None:
    secret = make_secret(tmp_path, mode=0o644)
    extra = {
        "producer": ["--beanstalkd", "127.0.0.1:9", "--state", str(tmp_path / "c.json")],
        "consumer": ["--beanstalkd", "127.0.0.1:9"],
        "reducer": ["--beanstalkd", "127.0.0.1:9", "--checkpoint", str(tmp_path / "ck.sqlite")],
        "run": ["--data-dir", str(tmp_path / "data"), "--no-check"],
    }[role]
    config = tmp_path / "beanmill.toml"
    config.write_text(f"secret_file = {json.dumps(str(secret))}\n" if how == "config" else "")
    args = ["--config", str(config), role, SQUARES, *extra]
    if how == "flag":
        args += ["--secret-file", str(secret)]
    env = {"BEANMILL_SECRET_FILE": str(secret)} if how == "env" else {}
    rc, _, err = finish(procs.beanmill(*args, env=env))
    assert rc == exitcodes.USAGE
    assert err == (
        f"beanmill: error: secret file {secret} is readable by others (mode 0644): "
        f"chmod 600 {secret}\n"
    )


def test_run_makes_a_private_secret_and_signs_what_it_writes(
    procs: Procs, beanstalkd: Beanstalkd, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    args = ["run", SQUARES, "--data-dir", str(data), "--batch-size", "50"]
    env = {"SUMS_ITEMS": str(N)}
    rc, out, err = finish(procs.beanmill(*args, "--beanstalkd", beanstalkd.address, env=env))
    assert rc == 0, err
    assert f"result: {squares_answer(N)}" in out
    secret = data / "secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    key = secret.read_text()
    assert len(bytes.fromhex(key.strip())) == 32
    client = greenstalk.Client((beanstalkd.host, beanstalkd.port), encoding=None)
    client.use("squares.control")
    finished = client.peek_ready()
    client.close()
    load_secret(secret).verify(finished.body)  # the finished record is signed with it
    rc, out, err = finish(procs.beanmill(*args, "--beanstalkd", beanstalkd.address, env=env))
    assert rc == 0, err
    assert secret.read_text() == key, "the secret is made once and kept"
