"""The random order: a bijection on [0, n), deterministic for a seed, resumable, uniform."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beanmill.permutation import Permutation

SIZES = [1, 2, 3, 7, 97, 255, 256, 257, 1000, 4095, 4096, 4097, 65537]


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("seed", [0, 1, 2**40 + 3])
def test_it_is_a_bijection_for_every_size(n: int, seed: int) -> None:
    perm = Permutation(n, seed)
    assert sorted(perm(i) for i in range(n)) == list(range(n))


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 3000), seed=st.integers(0, 2**64 - 1))
def test_it_is_a_bijection_for_any_size_and_seed(n: int, seed: int) -> None:
    perm = Permutation(n, seed)
    assert len({perm(i) for i in range(n)}) == n


@settings(max_examples=300, deadline=None)
@given(n=st.sampled_from([10**9, 10**12, 2**40 - 1]), seed=st.integers(0, 2**32), data=st.data())
def test_inverse_undoes_it_on_huge_populations(n: int, seed: int, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, n - 1))
    perm = Permutation(n, seed)
    j = perm(i)
    assert 0 <= j < n and perm.inverse(j) == i


def test_same_seed_same_order_in_another_process_other_seed_other_order() -> None:
    """No hash() randomisation, no global random state: a restart sees the same order."""
    code = (
        "from beanmill.permutation import Permutation as P\n"
        "print([P(1000, 42)(i) for i in range(20)])"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123"},
    ).stdout
    here = [Permutation(1000, 42)(i) for i in range(20)]
    assert other.strip() == str(here)
    assert here != [Permutation(1000, 43)(i) for i in range(20)]


def test_indices_from_a_cursor_are_the_tail_of_the_whole_order() -> None:
    perm = Permutation(5000, 7)
    whole = list(perm.indices())
    assert list(perm.indices(1234)) == whole[1234:]


def test_first_position_is_close_to_uniform_over_seeds() -> None:
    n, seeds = 10, 20_000
    counts = [0] * n
    for seed in range(seeds):
        counts[Permutation(n, seed)(0)] += 1
    expected = seeds / n
    chi2 = sum((c - expected) ** 2 / expected for c in counts)
    assert chi2 < 30, counts  # 9 degrees of freedom: p < 0.0005 beyond 30


def test_a_prefix_is_a_fair_sample() -> None:
    means = [sum(Permutation(1000, s)(i) for i in range(100)) / 100 for s in range(300)]
    assert abs(sum(means) / len(means) - 499.5) < 10


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_a_bad_size_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        Permutation(bad, 1)  # type: ignore[arg-type]


def test_a_position_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        Permutation(10, 1)(10)
