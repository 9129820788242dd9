from __future__ import annotations

from recgpt.data.records import Item
from recgpt.eval.tag_copies import CategoryVocabulary, copy_kind


class _Catalogue:
    items = {
        "1": Item(item_id="1", title="Paper Mate InkJoy 300 RT Retractable Ballpoint Pens",
                  category_path=("Office & School Supplies", "Writing & Correction Supplies", "Pens & Refills", "Rollerball Pens")),
        "2": Item(item_id="2", title="Avery Address Labels", category_path=("Office & School Supplies", "Labels & Stickers")),
    }


VOCAB = CategoryVocabulary.of(_Catalogue())  # type: ignore[arg-type]
TITLES = ["Paper Mate InkJoy 300 RT Retractable Ballpoint Pens, Assorted"]


def test_pasted_paths_in_any_form_are_paths() -> None:
    assert copy_kind(", Labels > Indexes & Stamps > Labels & Stickers > Address Labels:", VOCAB, TITLES) == "path"
    assert copy_kind("writing & correction supplies, pens & refills", VOCAB, TITLES) == "path"


def test_one_level_name_is_a_category_name_not_a_path() -> None:
    assert copy_kind("Rollerball Pens", VOCAB, TITLES) == "category_name"
    assert copy_kind("  office & school supplies ", VOCAB, TITLES) == "category_name"


def test_a_long_verbatim_span_of_a_history_title_is_a_title_copy() -> None:
    assert copy_kind("InkJoy 300 RT Retractable", VOCAB, TITLES) == "title"
    assert copy_kind("ballpoint pens", VOCAB, TITLES) is None  # two words: a product type, not a copy


def test_own_words_are_not_copies() -> None:
    assert copy_kind("quick-dry gel pens for exams", VOCAB, TITLES) is None
