"""Metrics: the consumer's counters, the rate, the checkpoint's series at scrape time, the
status document, and the loopback rule of --http."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from beanmill.checkpoint import Checkpoint, read_snapshot
from beanmill.errors import BeanmillError
from beanmill.jsontypes import JSON
from beanmill.metrics import CheckpointCollector, ConsumerMetrics, Live, RateTracker, new_registry
from beanmill.outcomes import FailedItem
from beanmill.seen import Seen
from beanmill.web import serve_checkpoint
from beanmill.web.address import HttpAddress, parse_http
from beanmill.web.http import static_file
from beanmill.web.status import StatusSource, state_of
from beanmill.wire import Failure, Partial

JOB = "squares"


def samples(registry_text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(registry_text.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: bytes, name: str, **labels: str) -> float:
    return samples(text)[(name, tuple(sorted({"job": JOB, **labels}.items())))]


def partial(items: int, failed: int = 0, final: bool = False, host: str = "") -> Partial:
    failures = (Failure("ValueError: x", "", tuple(range(failed))),) if failed else ()
    return Partial(("b-1",), items, items, failed=failures, final=final, host=host)


def test_consumer_metrics_count_maps_failures_and_retries_once_per_batch() -> None:
    registry = new_registry()
    metrics = ConsumerMetrics(JOB, registry)
    metrics.mapped([partial(8, failed=2, final=False)], 0.02)
    metrics.mapped([partial(9, failed=1, final=True)], 0.3)
    text = generate_latest(registry)
    assert value(text, "beanmill_maps_total") == 20
    assert value(text, "beanmill_retries_total") == 2
    assert value(text, "beanmill_consumer_items_failed_total") == 1
    assert value(text, "beanmill_batch_map_seconds_count") == 2
    assert value(text, "beanmill_batch_map_seconds_bucket", le="0.05") == 1


def test_consumer_paused_gauge_reads_the_reason_at_scrape_time() -> None:
    registry = new_registry()
    metrics = ConsumerMetrics(JOB, registry)
    reason: list[str | None] = [None]
    metrics.watch_pause(lambda: reason[0])
    assert value(generate_latest(registry), "beanmill_consumer_paused", reason="storm") == 0
    reason[0] = "storm"
    text = generate_latest(registry)
    assert value(text, "beanmill_consumer_paused", reason="storm") == 1
    assert value(text, "beanmill_consumer_paused", reason="results_backlog") == 0


def test_rate_is_items_over_the_recent_window_and_none_before_two_seconds() -> None:
    rates = RateTracker(window_s=10)
    assert rates.add(0, now=100.0) is None
    assert rates.add(50, now=101.0) is None
    assert rates.add(300, now=103.0) == pytest.approx(100.0)
    assert rates.add(300, now=120.0) == pytest.approx(0.0)  # stalled: old samples dropped


def test_seen_counts_duplicates_and_hosts_that_name_themselves() -> None:
    seen = Seen()
    a, b = partial(5, host="h1"), partial(7)
    seen.partials([a, b], [a])
    assert seen.duplicates == 1
    assert list(seen.hosts) == ["h1"] and seen.hosts["h1"].items == 5


def checkpoint(
    tmp_path: Path,
    estimate: dict[str, JSON] | None = None,
    failed: Sequence[FailedItem] = (),
) -> Path:
    path = tmp_path / "ckpt.sqlite"
    ckpt = Checkpoint(path, JOB)
    try:
        applied = [("s10-0", 10), ("s10-1", 20)]
        ckpt.commit(total=42, items=30, applied=applied, estimate=estimate, failed=failed)
    finally:
        ckpt.close()
    return path


def test_checkpoint_series_match_the_snapshot(tmp_path: Path) -> None:
    path = checkpoint(tmp_path)
    registry = new_registry()
    seen = Seen(duplicates=3)
    registry.register(CheckpointCollector(JOB, path, RateTracker(), None, Live(seen, 100)))
    text = generate_latest(registry)
    assert value(text, "beanmill_items_counted_total") == 30
    assert value(text, "beanmill_batches_applied_total") == 2
    assert value(text, "beanmill_items_total") == 100
    assert value(text, "beanmill_items_failed") == 0
    assert value(text, "beanmill_complete") == 0
    assert value(text, "beanmill_duplicates_dropped_total") == 3
    assert 0 <= value(text, "beanmill_seconds_since_commit") < 60
    assert ("beanmill_estimate", (("job", JOB),)) not in samples(text)


def test_estimate_and_half_width_when_sampling(tmp_path: Path) -> None:
    estimate: dict[str, JSON] = {"mean": 10.0, "ci95": [9.0, 11.0], "n": 30}
    path = checkpoint(tmp_path, estimate=estimate)
    registry = new_registry()
    registry.register(CheckpointCollector(JOB, path, RateTracker()))
    text = generate_latest(registry)
    assert value(text, "beanmill_estimate") == 10.0
    assert value(text, "beanmill_estimate_half_width") == 1.0
    doc = StatusSource(path, RateTracker()).document()
    assert doc["state"] == "sampling" and doc["half_width"] == 1.0
    assert doc["history"] == [[30, 10.0, 9.0, 11.0]]


def test_status_document_is_status_json_plus_what_the_page_needs(tmp_path: Path) -> None:
    failed = FailedItem("s10-1", 7, "FileNotFoundError: 7.txt", "tb", 3, "h")
    path = checkpoint(tmp_path, failed=[failed])
    doc = StatusSource(path, RateTracker()).document()
    assert {k: doc[k] for k in read_snapshot(path).as_json()} == read_snapshot(path).as_json()
    assert doc["state"] == "running" and doc["report"] == "42"
    assert doc["failed"] == [
        {"item": 7, "batch": "s10-1", "error": failed.error, "attempts": 3, "host": "h"}
    ]
    assert doc["consumers"] is None and doc["tubes"] is None


def test_state_names() -> None:
    class Snap:
        complete, failed_items, estimate = False, 0, None

    snap = Snap()
    assert state_of(snap) == "running"  # type: ignore[arg-type]
    assert state_of(snap, disk_full=True) == "waiting on a full disk"  # type: ignore[arg-type]
    snap.estimate = {"mean": 1}  # type: ignore[assignment]
    assert state_of(snap) == "sampling"  # type: ignore[arg-type]
    snap.complete = True
    assert state_of(snap) == "finished"  # type: ignore[arg-type]
    snap.failed_items = 2
    assert state_of(snap) == "finished with failures"  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["127.0.0.1:8000", "localhost:0", "[::1]:8000", "127.1.2.3:9"])
def test_http_accepts_loopback(text: str) -> None:
    assert parse_http(text).port == int(text.rpartition(":")[2])


@pytest.mark.parametrize("text", ["0.0.0.0:8000", "10.0.0.5:80", "example.org:80", "[::]:8000"])
def test_http_refuses_other_addresses_unless_public(text: str) -> None:
    with pytest.raises(BeanmillError, match="--http-public"):
        parse_http(text)
    assert parse_http(text, public=True).host == text.rpartition(":")[0].strip("[]")


@pytest.mark.parametrize("text", ["8000", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:70000"])
def test_http_address_must_be_host_and_port(text: str) -> None:
    with pytest.raises(BeanmillError, match="HOST:PORT"):
        parse_http(text)


def test_static_page_is_shipped_and_uses_no_cdn() -> None:
    page = static_file("index.html").decode()
    assert "/static/uPlot.iife.min.js" in page and "/static/dashboard.js" in page
    for name in ("index.html", "dashboard.js", "dashboard.css"):
        assert "https://" not in static_file(name).decode()
    assert b"uPlot" in static_file("uPlot.iife.min.js")
    assert b"MIT License" in static_file("LICENSE.uPlot")


def test_server_serves_page_status_and_metrics_and_404s_the_rest(tmp_path: Path) -> None:
    path = checkpoint(tmp_path)
    server = serve_checkpoint(JOB, path, HttpAddress("127.0.0.1", 0))
    base = f"http://{server.address}"
    try:
        with urllib.request.urlopen(base + "/", timeout=10) as resp:
            assert b"dashboard.js" in resp.read()
        with urllib.request.urlopen(base + "/api/status", timeout=10) as resp:
            assert json.load(resp)["items"] == 30
        with urllib.request.urlopen(base + "/metrics", timeout=10) as resp:
            assert value(resp.read(), "beanmill_items_counted_total") == 30
        for missing in ("/nothing", "/static/../metrics.py", "/static/x.py"):
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(base + missing, timeout=10)
            assert info.value.code == 404
    finally:
        server.close()


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    path = checkpoint(tmp_path)
    first = serve_checkpoint(JOB, path, HttpAddress("127.0.0.1", 0))
    try:
        with pytest.raises(BeanmillError, match="pick another port"):
            serve_checkpoint(JOB, path, first.address)
    finally:
        first.close()


def test_a_finished_job_lingers_only_until_an_open_page_has_polled_the_end(
    tmp_path: Path,
) -> None:
    path = checkpoint(tmp_path)
    server = serve_checkpoint(JOB, path, HttpAddress("127.0.0.1", 0))
    base = f"http://{server.address}"
    try:
        with urllib.request.urlopen(base + "/metrics", timeout=10) as resp:
            resp.read()
        assert not server.server.watched(), "a scrape is not a page: no linger for it"
        with urllib.request.urlopen(base + "/api/status", timeout=10) as resp:
            assert json.load(resp)["complete"] is False
        assert server.server.watched()
        assert not server.server.end_shown.is_set()
        ckpt = Checkpoint(path, JOB)
        try:
            ckpt.commit(total=42, items=30, applied=[], stopped_because="max items reached")
        finally:
            ckpt.close()
        with urllib.request.urlopen(base + "/api/status", timeout=10) as resp:
            assert json.load(resp)["complete"] is True
        # set by the server's thread once the body is sent: waited for, not raced
        assert server.server.end_shown.wait(10), "the page has the end: close at once"
    finally:
        server.close(linger=True)
