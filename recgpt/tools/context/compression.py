"""Context compression, text mode: RecGPT-V1-style hierarchical aggregation of a history.

history -> time (or position) buckets -> action -> category path -> deduplicated titles (×n).
Only the most recent `max_items` distinct items are listed by title; anything older is summarised
as category counts, so a history of thousands of items still yields a bounded context. The
result is rendered once per run into the shared prompt prefix (`recgpt.prompts.shared`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Sequence

from pydantic import BaseModel, Field

from recgpt.data.records import Interaction, Item
from recgpt.tools.context.entities import entity

DAY = 86_400
TIME_BUCKETS = ((7 * DAY, "within the last week"), (30 * DAY, "within the last month"),
                (180 * DAY, "within the last 6 months"), (None, "earlier"))
POSITION_BUCKETS = ((5, "most recent 5"), (20, "previous 15"), (None, "earlier"))
_CONTROL = re.compile("[\x00-\x1f\x7f<>{}\"`\u27e6\u27e7]")  # ⟦ ⟧ delimit hybrid entities: never data


class CompressionConfig(BaseModel):
    max_items: int = Field(default=40, ge=1, description="Distinct items listed by title; older ones are summarised.")
    max_title_chars: int = Field(default=80, ge=10)
    summary_categories: int = Field(default=8, ge=1, description="Categories named in the older-history summary.")
    entities: bool = Field(default=False, description=(
        "Hybrid compression: name each listed item as one entity marker (one soft token, see recgpt.tools.context.hybrid) "
        "instead of its quoted title."))
    entity_categories: bool = Field(default=True, description=(
        "With entities: keep each item's category path as text, the items grouped under it as in text mode; False: "
        "the soft token carries the category and the entities are grouped by action only, side by side (issue 35: "
        "the history at a fifth of its text tokens or less, if the adaptor's tokens hold the category)."))
    entity_anchors: int = Field(default=0, ge=0, description=(
        "With entities: the newest N listed items the user liked (rated 4/5 or more, or unrated) keep their quoted "
        "title as text instead of a soft token, so the model can still name the films it would build a tag on."))
    entity_category_counts: bool = Field(default=False, description=(
        "With entities and no category text: the summary line counts the categories of the whole history (listed "
        "items too), so the category mix that the text layout shows by its grouping survives in one line."))


class CompressedHistory(BaseModel):
    text: str
    n_events: int
    n_distinct_items: int
    n_listed_items: int
    n_summarised_events: int

    @property
    def truncated(self) -> bool:
        return self.n_summarised_events > 0


def clean_title(title: str, limit: int) -> str:
    """Titles are data quoted inside the prompt: strip what could fake structure, clip length."""
    text = " ".join(_CONTROL.sub(" ", title).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _bucket_labels(events: Sequence[Interaction]) -> list[str]:
    """Label per event (same order). Timestamps relative to the latest event, else by position."""
    if events and all(e.timestamp is not None for e in events):
        latest = max(e.timestamp for e in events if e.timestamp is not None)
        labels = []
        for e in events:
            age = latest - (e.timestamp or 0)
            labels.append(next(label for limit, label in TIME_BUCKETS if limit is None or age <= limit))
        return labels
    labels = []
    n = len(events)
    for index in range(n):
        from_end = n - index  # 1 = most recent
        labels.append(next(label for limit, label in POSITION_BUCKETS if limit is None or from_end <= limit))
    return labels


def compress_history(
    events: Sequence[Interaction], items: dict[str, Item], config: CompressionConfig = CompressionConfig(),
    category_label: Callable[[str], str | None] | None = None,
) -> CompressedHistory:
    """The history as grouped text. `category_label` renames each item's category path (a grounded run's short enum
    labels, so that the history and the schema speak one vocabulary; a path it cannot name keeps its path)."""

    def named(category: str) -> str:
        return (category_label(category) if category_label and category else None) or category or "uncategorised"

    if not events:
        return CompressedHistory(text="(no behaviour history: a new user)", n_events=0, n_distinct_items=0,
                                 n_listed_items=0, n_summarised_events=0)
    # Walk newest -> oldest; the first max_items distinct items are listed, the rest summarised.
    listed: set[str] = set()
    detailed_idx: list[int] = []
    summarised: list[Interaction] = []
    for index in range(len(events) - 1, -1, -1):
        item_id = events[index].item_id
        if item_id in listed or len(listed) < config.max_items:
            listed.add(item_id)
            detailed_idx.append(index)
        else:
            summarised.append(events[index])
    detailed_idx.reverse()
    detailed = [events[i] for i in detailed_idx]
    anchors = _anchor_titles(detailed, items, config) if config.entities else set()
    labels = _bucket_labels(detailed)

    # bucket -> action -> category -> Counter(title) (insertion order = newest bucket first)
    tree: OrderedDict[str, OrderedDict[str, OrderedDict[str, Counter[str]]]] = OrderedDict()
    for event, label in sorted(zip(detailed, labels), key=lambda pair: _bucket_rank(pair[1])):
        item = items[event.item_id]
        action = event.action if event.rating is None else f"{event.action} {event.rating:g}/5"
        category = named(item.category) if not config.entities or config.entity_categories else ""
        title = clean_title(item.title, config.max_title_chars)
        tree.setdefault(label, OrderedDict()).setdefault(action, OrderedDict()).setdefault(category, Counter())[title] += 1

    lines: list[str] = []
    for label, actions in tree.items():
        count = sum(sum(c.values()) for a in actions.values() for c in a.values())
        lines.append(f"[{label}: {count} interactions]")
        for action, categories in actions.items():
            for category, titles in categories.items():
                if not category:  # entities without category text: one position each, side by side
                    lines.append(f"- {action}: " + "".join((f'"{t}"' if t in anchors else entity(t)) + (f"×{n}" if n > 1 else "")
                                                           for t, n in titles.items()))
                    continue
                shown = "; ".join((entity(t) if config.entities and t not in anchors else f'"{t}"') + (f" ×{n}" if n > 1 else "") for t, n in titles.items())
                lines.append(f"- {action} · {category}: {shown}")
    # the compact layout names a summarised category by its leaf: the path's shared root ("Movies > ") is
    # repeated redundancy there, and the listed items' soft tokens carry their categories
    leaf_only = config.entities and not config.entity_categories
    whole = leaf_only and config.entity_category_counts
    if summarised or whole:
        counted = list(events) if whole else summarised
        names = (named(items[e.item_id].category) for e in counted)
        cats = Counter(name.split(" > ")[-1] if leaf_only else name for name in names)
        top = ", ".join(f"{c} ({n})" for c, n in cats.most_common(config.summary_categories))
        if whole:
            older = f"{len(summarised)} older summarised; " if summarised else ""
            lines.append(f"[{older}all {len(events)} interactions by category] {top}")
        else:
            lines.append(f"[older history: {len(summarised)} interactions summarised] top categories: {top}")
    return CompressedHistory(
        text="\n".join(lines), n_events=len(events), n_distinct_items=len({e.item_id for e in events}),
        n_listed_items=len(listed), n_summarised_events=len(summarised),
    )


def _anchor_titles(detailed: Sequence[Interaction], items: dict[str, Item], config: CompressionConfig) -> set[str]:
    """The cleaned titles of the newest `entity_anchors` distinct items the user liked (rated 4 or more of 5, or an
    action without a rating): a disliked film is not one to build a tag on."""
    chosen: list[str] = []
    for event in reversed(detailed):
        if len(chosen) >= config.entity_anchors:
            break
        title = clean_title(items[event.item_id].title, config.max_title_chars)
        if (event.rating is None or event.rating >= 4) and title not in chosen:
            chosen.append(title)
    return set(chosen)


def _bucket_rank(label: str) -> int:
    """Newest bucket first; "earlier" (shared by both bucket families) always last."""
    order = [lbl for _, lbl in POSITION_BUCKETS if lbl != "earlier"] + [lbl for _, lbl in TIME_BUCKETS if lbl != "earlier"]
    return order.index(label) if label in order else len(order)


def raw_history_text(events: Sequence[Interaction], items: dict[str, Item]) -> str:
    """The uncompressed baseline: one line per interaction, title and category path, no dedupe."""
    return "\n".join(f"{e.action}: {items[e.item_id].title} | {items[e.item_id].category}" for e in events)


def raw_history(events: Sequence[Interaction], items: dict[str, Item], keep: int | None = None,
                max_title_chars: int = 80) -> CompressedHistory:
    """RecGPT-V1's raw context: every interaction, newest first, one line each (date or position, action, quoted
    title, category path), no deduplication and no summary. `keep` lists only the newest `keep` interactions: the
    older ones are dropped (counted in `n_summarised_events`), never summarised."""
    if not events:
        return CompressedHistory(text="(no behaviour history: a new user)", n_events=0, n_distinct_items=0,
                                 n_listed_items=0, n_summarised_events=0)
    shown = list(events)[-keep:] if keep is not None else list(events)
    lines = []
    for position, event in enumerate(reversed(shown), start=1):
        item = items[event.item_id]
        when = (_date_of(event.timestamp) if event.timestamp is not None else f"#{position}")
        action = event.action if event.rating is None else f"{event.action} {event.rating:g}/5"
        lines.append(f'- {when} · {action} · "{clean_title(item.title, max_title_chars)}" · {item.category or "uncategorised"}')
    return CompressedHistory(text="\n".join(lines), n_events=len(events), n_distinct_items=len({e.item_id for e in events}),
                             n_listed_items=len({e.item_id for e in shown}), n_summarised_events=len(events) - len(shown))


def _date_of(timestamp: int) -> str:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.timezone.utc).date().isoformat()
