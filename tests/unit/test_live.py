"""The live line's pure parts: items to the end target, ETA, the text; and its log relay."""

from __future__ import annotations

import io
from pathlib import Path

import structlog

from beanmill.ending import MIN_ITEMS_FOR_CI, EndConditions
from beanmill.jsontypes import JSON
from beanmill.live import (
    LineFacts,
    estimate_text,
    eta_seconds,
    postfix,
    target_items,
)
from beanmill.live_line import LiveLine


def unheld(**kw: float | str | None) -> EndConditions:
    """End conditions with no --min-items-to-stop, to see the projection alone."""
    return EndConditions(min_items_to_stop=0, **kw)  # type: ignore[arg-type]


def one(value: float, half: float, n: int) -> dict[str, JSON]:
    return {"value": value, "ci95": [value - half, value + half], "n": n}


def test_target_items_follows_the_half_width_shrinking_as_one_over_root_n() -> None:
    conds = unheld(until_ci=0.5)
    # half-width 1.0 at n=1,000: a half-width of 0.5 needs 4x the items
    assert target_items(conds, 1000, one(10.0, 1.0, 1000), 10**6) == 4000
    rel = unheld(until_rel_ci=0.01)  # 1% of 10 is 0.1: 100x the items
    assert target_items(rel, 1000, one(10.0, 1.0, 1000), 10**6) == 100_000


def test_target_items_is_never_before_min_items_to_stop() -> None:
    conds = EndConditions(until_ci=0.5, min_items_to_stop=30_000)
    assert target_items(conds, 1000, one(10.0, 1.0, 1000), 10**6) == 30_000
    assert target_items(conds, 1000, one(10.0, 1.0, 1000), 20_000) == 20_000


def test_target_items_is_the_first_end_the_population_or_max_items() -> None:
    conds = unheld(until_ci=0.01, max_items=50_000)
    assert target_items(conds, 1000, one(10.0, 1.0, 1000), 10**6) == 50_000
    assert target_items(unheld(until_ci=0.01), 1000, one(10.0, 1.0, 1000), 20_000) == 20_000
    assert target_items(EndConditions(), 1000, None, 20_000) == 20_000
    assert target_items(EndConditions(), 1000, None, None) is None


def test_target_items_when_met_already_is_the_items_at_hand_or_the_minimum() -> None:
    conds = unheld(until_ci=2.0)
    assert target_items(conds, 1000, one(10.0, 1.0, 1000), 10**6) == 1000
    assert target_items(conds, 10, one(10.0, 1.0, 10), 10**6) == MIN_ITEMS_FOR_CI


def test_target_items_with_fields_waits_for_the_slowest_or_the_named_one() -> None:
    fields: dict[str, JSON] = {"a": one(1.0, 0.2, 100), "b": one(1.0, 0.4, 100), "c": {"x": 1}}
    assert target_items(unheld(until_ci=0.2), 100, fields, None) == 400
    named = unheld(until_ci=0.2, until_field="a")
    assert target_items(named, 100, fields, None) == 100


def test_target_items_scales_a_field_that_sees_fewer_items() -> None:
    # the field has half the items (missing values): 4x its n is 4x the items as well
    assert target_items(unheld(until_ci=0.5), 2000, one(1.0, 1.0, 1000), None) == 8000


def test_eta_is_the_items_left_over_the_rate() -> None:
    assert eta_seconds(1000, 4000, 100.0) == 30
    assert eta_seconds(1000, 4000, 0.0) is None
    assert eta_seconds(1000, None, 100.0) is None
    assert eta_seconds(5000, 4000, 100.0) == 0


def test_estimate_text_reads_the_estimate_the_stop_rule_reads() -> None:
    assert estimate_text(one(12.5, 0.3125, 100)) == "est 12.5±0.31"
    fields: dict[str, JSON] = {"a": one(1.0, 0.5, 100), "b": one(2.0, 0.25, 100)}
    assert estimate_text(fields) == "est a=1±0.5"
    assert estimate_text(fields, "b") == "est b=2±0.25"
    assert estimate_text(None) == ""
    assert estimate_text({"count": 3}) == ""


def test_postfix_says_rate_eta_target_estimate_and_failures() -> None:
    facts = LineFacts(rate=1234.4, eta=90, to_target=True, estimate="est 1±0.1", failed=3)
    assert postfix(facts) == "1,234 items/s | ETA 1m30s to target | est 1±0.1 | 3 failed"
    assert postfix(LineFacts(rate=0, eta=None, buried=2)) == "0 items/s | 2 buried"
    assert postfix(LineFacts(rate=None, eta=None)) == "", "no rate yet: none shown"


def test_the_roles_log_goes_above_the_line_but_their_progress_lines(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    live = LiveLine("squares", tmp_path, tmp_path / "none.sqlite", EndConditions(), 100, out, err)
    live.log.write('{"event": "role_warned"}\n[squares] 10/100 items\n{"event": "half')
    live.tick(force=True)
    structlog.get_logger().warning("run_warned")
    shown = err.getvalue()
    assert "run_warned" in shown, "run's own log goes above the line too"
    assert '{"event": "role_warned"}' in shown
    assert "[squares] 10/100 items" not in shown
    assert '"half' not in shown, "a line is shown once it is whole"
    live.log.write(' done"}\n')
    live.close()
    assert '"half done"}' in err.getvalue()
    assert "[squares]" in out.getvalue(), "the bar is on stdout"
    log = tmp_path / "run.log"
    assert log.read_bytes().count(b"\n") == 3
    assert log.stat().st_mode & 0o777 == 0o600, "errors in it may quote items"
