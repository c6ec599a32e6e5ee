"""Which pair of adjacent lineage layers is the first to disagree, and by how much."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from decimal import Decimal

from bot.kpi.definitions import KpiConfig
from bot.kpi.model import Divergence, LayerValue

PartitionValues = dict[str, tuple[Decimal | None, int]]


def divergences(
    kpi: KpiConfig,
    layers: Sequence[LayerValue],
    per_partition: Sequence[PartitionValues | None],
    partitions: Sequence[str],
) -> list[Divergence]:
    """Every adjacent pair of layers whose KPI or row count differs in any of the partitions, in lineage order.

    Layers that could not be read (``None``) are skipped: their neighbours are compared instead.

    Args:
        kpi: The KPI (its aggregate decides whether per-partition values add up).
        layers: The layers' totals, in lineage order.
        per_partition: Each layer's (value, rows) by partition label, or None when it failed.
        partitions: The partitions compared.
    """
    found = []
    readable = [(layer, values) for layer, values in zip(layers, per_partition, strict=True) if values is not None]
    for (upstream, up), (downstream, down) in itertools.pairwise(readable):
        rows_lost = 0
        diff = Decimal(0)
        differs = False
        for partition in partitions:
            up_value, up_rows = up.get(partition, (None, 0))
            down_value, down_rows = down.get(partition, (None, 0))
            if up_value != down_value or up_rows != down_rows:
                differs = True
            rows_lost += up_rows - down_rows
            diff += (down_value or Decimal(0)) - (up_value or Decimal(0))
        if differs:
            if kpi.aggregate not in ("count", "sum"):
                diff = (downstream.value or Decimal(0)) - (upstream.value or Decimal(0))
            found.append(Divergence(upstream.name, downstream.name, diff, rows_lost))
    return found
