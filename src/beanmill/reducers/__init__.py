"""Ready-made reducers: monoids whose partials and totals are plain JSON, so they can travel
on the wire and sit in the checkpoint. A None partial (the checkpoint's total before the
first batch) counts as the identity everywhere."""

from __future__ import annotations

from beanmill.reducers._basic import Count, Counter, Max, Min, Sum, TopK
from beanmill.reducers._common import Z95
from beanmill.reducers._composite import Fields, GroupBy
from beanmill.reducers._moments import Mean, Proportion, Total
from beanmill.reducers._sketches import Distinct, Quantile, Quantiles

__all__ = [
    "Z95",
    "Count",
    "Counter",
    "Distinct",
    "Fields",
    "GroupBy",
    "Max",
    "Mean",
    "Min",
    "Proportion",
    "Quantile",
    "Quantiles",
    "Sum",
    "TopK",
    "Total",
]
