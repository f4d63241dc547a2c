"""Sharding: one input checked by several GREEN-API instances at once, one Airflow mapped task per instance.

Every mapped task reads the whole input and keeps only its own share, so no task ever sends a number that
another task sends. The partition is on the *normalised* digits, ``int(digits) % shard_count == shard_index``:
the same number written two ways (``+7 912 345-67-89``, ``89123456789``) lands in the same shard, a number
keeps its shard from run to run, and the rule is plain SQL in SQLite and PostgreSQL
(``CAST(phone_number AS BIGINT) % n``; GREEN-API's numbers have at most 16 digits, so they fit a BIGINT).
Inputs that are not valid numbers have no digits: shard 0 records them all, so each is counted once.

    CheckWhatsappOperator.partial(task_id="check", sql=..., source_conn_id=..., destination_conn_id=...)
        .expand_kwargs(greenapi_shards(["greenapi_1", "greenapi_2", "greenapi_3", "greenapi_4"]))

See docs/scaling.md. Nothing here imports Airflow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Shard", "greenapi_shards", "shard_of"]


def shard_of(digits: str, shard_count: int) -> int:
    """The shard of a normalised number (international digits, as ``NormalizedNumber.digits``)."""
    return int(digits) % shard_count


@dataclass(frozen=True)
class Shard:
    """This task's share of the input: shard ``index`` of ``count`` (0-based)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        for name, value in (("shard_index", self.index), ("shard_count", self.count)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if self.count < 1:
            raise ValueError(f"shard_count must be at least 1, got {self.count}")
        if not 0 <= self.index < self.count:
            raise ValueError(
                f"shard_index must be from 0 to shard_count - 1 = {self.count - 1}, got {self.index}"
            )

    @classmethod
    def from_arguments(cls, shard_index: int | None, shard_count: int | None) -> Shard | None:
        """The shard of an operator's ``shard_index``/``shard_count`` (both or neither), None for neither."""
        if shard_index is None and shard_count is None:
            return None
        if shard_index is None or shard_count is None:
            raise ValueError(
                "give both shard_index and shard_count (or neither): each mapped task checks the numbers "
                "whose int(digits) % shard_count == shard_index; greenapi_shards() builds them for you"
            )
        return cls(shard_index, shard_count)

    def owns(self, digits: str | None) -> bool:
        """Whether this shard takes a normalised number; ``None`` (an invalid input) belongs to shard 0."""
        if digits is None:
            return self.index == 0
        return shard_of(digits, self.count) == self.index

    def __str__(self) -> str:
        return f"shard {self.index} of {self.count}"


def greenapi_shards(conn_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The keyword arguments of one mapped task per GREEN-API connection, for ``.expand_kwargs(...)``:
    ``[{"greenapi_conn_id": c, "shard_index": i, "shard_count": n}, ...]``.

    Each connection must be a different instance: two tasks pacing the same instance would together exceed
    its rate limit.
    """
    if isinstance(conn_ids, str) or not conn_ids:
        raise ValueError(f"greenapi_shards needs a non-empty list of GREEN-API connection ids, got {conn_ids!r}")
    repeated = sorted({c for c in conn_ids if list(conn_ids).count(c) > 1})
    if repeated:
        raise ValueError(
            f"greenapi_shards got the connection(s) {', '.join(repeated)} more than once: give each GREEN-API "
            "instance once (two tasks on one instance would exceed its rate limit together)."
        )
    count = len(conn_ids)
    return [{"greenapi_conn_id": c, "shard_index": i, "shard_count": count} for i, c in enumerate(conn_ids)]
