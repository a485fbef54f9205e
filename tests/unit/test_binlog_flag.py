"""The flag tube a role waiting on a full binlog disk watches: named, read back, fitted."""

from __future__ import annotations

from beanmill.beanstalk.binlog_flag import MAX_TUBE_CHARS, BinlogFull, flag_tube, parse_flag
from beanmill.jobspec import TUBE_NAME


def test_a_flag_tube_names_the_waiting_role_and_reads_back() -> None:
    waiting = BinlogFull("consumer", "host-7", 4242, 1_764_000_000)
    tube = flag_tube("sq.uares", waiting)
    assert tube == "sq.uares.binlog-full.consumer.host-7.4242.1764000000"
    assert parse_flag("sq.uares", tube) == waiting
    assert waiting.as_json() == {
        "role": "consumer",
        "host": "host-7",
        "pid": 4242,
        "since": 1_764_000_000,
    }


def test_a_host_name_with_dots_or_odd_characters_still_makes_a_valid_tube() -> None:
    tube = flag_tube("job", BinlogFull("producer", "a.b.example.org:x" + "h" * 300, 1, 2))
    assert len(tube) <= MAX_TUBE_CHARS and TUBE_NAME.match(tube[:150])
    parsed = parse_flag("job", tube)
    assert parsed is not None and parsed.role == "producer" and parsed.pid == 1
    assert parsed.host.startswith("a_b_example_org_x")


def test_other_tubes_are_no_flags() -> None:
    for tube in ["job.items", "job.results", "other.binlog-full.producer.h.1.2", "default"]:
        assert parse_flag("job", tube) is None
    assert parse_flag("job", "job.binlog-full.producer.h.x.2") is None


def test_the_line_says_who_waits_and_for_how_long() -> None:
    line = BinlogFull("reducer", "h", 9, 100).describe(now=160.4)
    assert line == "reducer pid 9 on h, waiting 60 s for space on beanstalkd's binlog disk"
