"""Stage: read the inputs chunk by chunk, leave alone those stored as they are, normalise the rest, keep this
shard's share, and stage them in the results table (de-duplicated, fresh answers kept: warehouse/store.py
decides which numbers are queued)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from airflow_provider_greenapi.numbers import PhoneNumberNormalizer
from airflow_provider_greenapi.results import Freshness, RunContext
from airflow_provider_greenapi.sharding import Shard
from airflow_provider_greenapi.warehouse import ResultsStore, StagedInput
from airflow_provider_greenapi.warehouse.results_table import stored_key


@dataclass
class StagingCounts:
    """Where every input went: its own number (``inputs``, then ``unchanged``, ``duplicates`` and ``invalid``
    among them), or another shard's share (``other_shards``)."""

    inputs: int = 0
    unchanged: int = 0
    duplicates: int = 0
    invalid: int = 0
    other_shards: int = 0


def stage_inputs(
    inputs: Iterable[tuple[object, str]],
    *,
    normalizer: PhoneNumberNormalizer,
    store: ResultsStore,
    context: RunContext,
    freshness: Freshness,
    clock: Callable[[], datetime],
    chunk_size: int,
    shard: Shard | None = None,
    commit: bool = True,
    commit_interval: float = 0.0,
    seen_keys: set[str] | None = None,
    between_chunks: Callable[[], None] | None = None,
) -> StagingCounts:
    """Stage ``inputs`` (value, source key) in chunks of ``chunk_size``, compared with the stored ones a window
    at a time (the engine's ``lookup_keys``, at least a chunk), committing every ``commit_interval``
    seconds and at the end unless ``commit`` is False (a dry run keeps its staging uncommitted and rolls it
    back). A crash loses at most the chunks since the last commit: the next run stages them again.
    ``seen_keys`` collects every non-empty source key, as stored (for a prune of the keys the source lost)."""
    counts = StagingCounts()
    iterator = iter(inputs)
    compare = store.has_rows()  # a table empty at the start holds no input as it is
    # inputs compared with the stored ones at a time: the engine's look-up size, at least a chunk
    window_size = max(chunk_size, store.engine.lookup_keys) if compare else chunk_size
    last_commit = time.monotonic()
    while window := list(itertools.islice(iterator, window_size)):
        if seen_keys is not None:
            seen_keys.update(stored_key(key) for _, key in window if key)
        unchanged = store.unchanged_inputs(window, normalizer.settings) if compare else {}
        own_unchanged = sum(1 for digits in unchanged.values() if shard is None or shard.owns(digits))
        counts.unchanged += own_unchanged
        counts.inputs += own_unchanged
        counts.other_shards += len(unchanged) - own_unchanged
        changed = [item for at, item in enumerate(window) if at not in unchanged] if unchanged else window
        for start in range(0, len(changed), chunk_size):
            staged = [StagedInput(normalizer(value), key) for value, key in changed[start : start + chunk_size]]
            if shard is not None:
                own = [s for s in staged if shard.owns(s.number.digits)]
                counts.other_shards += len(staged) - len(own)
                staged = own
            stored = store.stage(staged, context, freshness, clock(), normalizer.settings)
            counts.inputs += stored.inputs
            counts.unchanged += stored.unchanged
            counts.duplicates += stored.duplicates
            counts.invalid += stored.invalid
            if between_chunks is not None:
                between_chunks()  # the run's heartbeat, where it must go through the results' connection
            if commit and time.monotonic() - last_commit >= commit_interval:
                store.commit()
                last_commit = time.monotonic()
        if not changed and between_chunks is not None:
            between_chunks()
    if commit:
        store.commit()
    return counts
