"""Batch output: one record per user in JSONL or Parquet shards, and the users already done (for resume).

JSONL shards are appended and flushed record by record, so a killed run keeps every finished user. Parquet shards are
written whole when `shard_size` records are buffered (and at the end): a kill loses only the buffered users, which the
next run redoes. Resume reads both formats.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

Format = Literal["jsonl", "parquet"]
FORMATS: tuple[str, ...] = ("jsonl", "parquet")


def done_users(out_dir: Path) -> set[str]:
    """User ids present in any shard of `out_dir` (a torn last JSONL line, from a kill mid-write, is ignored)."""
    done: set[str] = set()
    for shard in sorted(out_dir.glob("part-*.jsonl")):
        for line in shard.read_text().splitlines():
            try:
                done.add(str(json.loads(line)["user_id"]))
            except (ValueError, KeyError, TypeError):
                continue
    for shard in sorted(out_dir.glob("part-*.parquet")):
        done.update(str(u) for u in pq.read_table(shard, columns=["user_id"]).column("user_id").to_pylist())
    return done


def read_records(out_dir: Path) -> list[dict[str, Any]]:
    """Every record of `out_dir`, JSONL and Parquet shards alike."""
    records: list[dict[str, Any]] = []
    for shard in sorted(out_dir.glob("part-*.jsonl")):
        for line in shard.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    for shard in sorted(out_dir.glob("part-*.parquet")):
        for row in pq.read_table(shard).to_pylist():
            records.append({k: json.loads(v) if k in JSON_COLUMNS and isinstance(v, str) else v for k, v in row.items()})
    return records


JSON_COLUMNS = ("tags", "items", "explanations", "flags")
"""Nested fields, stored as JSON strings in Parquet (one flat schema whatever a user's answer holds)."""


class ShardWriter:
    """Writes records into `part-NNNNN.<format>` shards of at most `shard_size` records, never reusing a shard name."""

    def __init__(self, out_dir: Path, fmt: str = "jsonl", shard_size: int = 1000) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)} (got {fmt!r})")
        self.out_dir, self.fmt, self.shard_size = out_dir, fmt, shard_size
        out_dir.mkdir(parents=True, exist_ok=True)
        existing = [int(p.name.split("-")[1].split(".")[0]) for p in out_dir.glob("part-*.*") if p.name.split("-")[1].split(".")[0].isdigit()]
        self.index = max(existing, default=-1) + 1  # a resumed run starts a new shard: earlier ones are never rewritten
        self.count = 0
        self.buffer: list[dict[str, Any]] = []
        self.handle: Any = None

    def write(self, record: dict[str, Any]) -> None:
        if self.fmt == "jsonl":
            if self.handle is None or self.count >= self.shard_size:
                self._roll()
            self.handle.write(json.dumps(record) + "\n")
            self.handle.flush()
            os.fsync(self.handle.fileno())
            self.count += 1
        else:
            self.buffer.append(record)
            if len(self.buffer) >= self.shard_size:
                self._flush_parquet()

    def _roll(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.index += 1
        self.handle = (self.out_dir / f"part-{self.index:05d}.jsonl").open("a")
        self.count = 0

    def _flush_parquet(self) -> None:
        if not self.buffer:
            return
        rows = [{k: json.dumps(v) if k in JSON_COLUMNS else v for k, v in r.items()} for r in self.buffer]
        final = self.out_dir / f"part-{self.index:05d}.parquet"
        staging = final.with_suffix(".parquet.tmp")
        pq.write_table(pa.Table.from_pylist(rows), staging)
        staging.rename(final)  # a shard appears whole or not at all
        self.index += 1
        self.buffer = []

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None
        self._flush_parquet()
