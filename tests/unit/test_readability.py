"""Each readability detector against the real bad outputs of issue 33's demo (shipped policy, Office), and against
good outputs it must leave alone."""

from __future__ import annotations

import pytest

from recgpt.data import load_office
from recgpt.errors import RecGPTError
from recgpt.eval import readability as r
from tests.conftest import SHARED_DATA, needs_shared_data

pytestmark = needs_shared_data


@pytest.fixture(scope="module")
def office():
    return load_office(SHARED_DATA / "amazon2014_office")


@pytest.fixture(scope="module")
def lexicon(office):
    return r.Lexicon.of(office)


def test_personas_named_after_the_role_people_or_each_other_are_defects(lexicon) -> None:
    demo = [("Global Planner", "home decor supplies and gesture accessories boxes inch yellow pack of"),
            ("Global Planner", "home decor supplies and gesture accessories boxes inch yellow pack of"),
            ("Global Planner", "printer ink for the home office")]
    found = r.persona_defects(demo, lexicon)
    assert all("persona_role_name" in f for f in found)
    assert "persona_duplicate" in found[1] and "persona_duplicate" in found[2]  # same name; [1] also the same focus
    people = r.persona_defects([("Glen", "Office & School Supplies > Paper > Copy & Multipurpose Paper"),
                                ("Rebecca", "desk organisers")], lexicon)
    assert people[0] == ["persona_person_name", "persona_path_focus"] and people[1] == ["persona_person_name"]
    good = r.persona_defects([("Small business owner", "desk trays and file folders for a tidy desk"),
                              ("Label printing regular", "tape cartridges for the label maker"),
                              ("Back-to-school parent", "notebooks and pencils for the new term")], lexicon)
    assert good == [[], [], []]


def test_tags_with_title_filler_cuts_and_near_duplicates_are_defects(lexicon) -> None:
    demo = ["binder index dividers x inches yellow and white dividers for",
            "photo paper inch x inches color paper with edge protecters x",
            "self-stick notes assorted colors pack black and gr black box",
            "chalkboard assorted colors pack black and gr black box x x x",
            "ballpoint pens assorted colors pack of"]
    assert all(r.has_filler(t) for t in demo)
    assert r.is_cut_or_misspelled("self-stick notes assorted colors pack black and gr black box", lexicon)
    # words the catalogue never uses but English does are odd at worst, not cut (the Office run's false alarms)
    assert not any(r.is_cut_or_misspelled(t, lexicon) for t in ("mouse pads with wireless charging cord",
                                                                 "stapler sheets stapled", "pointed pencil sharpener"))
    assert r.is_cut_or_misspelled("photo paper with edge protecters", lexicon)
    clean = ["photo paper", "wirebound notebooks", "desktop staplers", "gel ink pens", "label maker tape",
             "round ring binders", "shipping envelopes"]
    assert not any(r.has_filler(t) or r.is_cut_or_misspelled(t, lexicon) for t in clean)
    dup = r.near_duplicates(["photo paper", "wirebound notebooks", "photo paper inch x inches color paper with edge",
                             "glossy photo paper"])
    assert dup == [False, False, True, True]
    assert r.near_duplicates(["gel pens", "ballpoint pens", "pencil sharpeners"]) == [False, False, False]


def test_explanations_that_echo_the_prompt_break_off_or_say_nothing_are_defects() -> None:
    echo = "The item matches the tone, audience, emotional angle, rhetorical device and seasonal framing of the user's history."
    assert "explanation_echo" in r.explanation_defects(echo, "Swingline stapler", "Desktop Staplers")
    cut = "The ballpoint pens are assorted colors pack of r."
    assert "explanation_unfinished" in r.explanation_defects(cut, "BIC Round Stic Ballpoint Pens", "Ballpoint Pens")
    assert r.is_unfinished("A label printer that keeps your files in order for") and r.is_unfinished("")
    assert not r.is_unfinished("Picked for your interest in presentation remotes: Logitech Wireless Presenter R400.")
    # the Office policy's answers in issue 33's readability run: the writer's instructions copied, decoding loops
    for copied in ("The item does for them a vivid image of the item in use.",
                   "The item does not mention anything for the shopper and tie it to something they bought or to their situation.",
                   "The item does not match the style guidelines."):
        assert "explanation_echo" in r.explanation_defects(copied, "Scotch Packaging Tape", "Packaging Tape")
    loop = "The item does for them coupon coupon coupon coupon coupon coupon coupon."
    assert "explanation_loop" in r.explanation_defects(loop, "200 Shipping Labels", "Shipping Labels")
    loop = "The item does sharp edges with sharp edges with sharp edges with sharp edges."
    assert "explanation_loop" in r.explanation_defects(loop, "X-ACTO Pencil Sharpener", "Pencil Sharpeners")
    residue = "This item helps sharpen ink for Epson X- series printer x touch and x series printer x touch ink cartridge."
    assert "explanation_size_residue" in r.explanation_defects(residue, "Generic Ink Cartridges for Epson", "Inkjet Printer Ink")
    sized = "Your 8.5 x 11 sheets fit this binder, so the notes you printed last week stay flat and together."
    assert r.explanation_defects(sized, "Avery Binder", "Binders") == []  # an "x" between numbers is a size, kept
    empty = "The item fits them because it's called a desktop label printer."
    assert r.explanation_defects(empty, "Brother P-touch Desktop Label Printer", "Label Makers") == ["explanation_adds_nothing"]
    good = ("After stocking up on file folders, you can label every one of them neatly with this printer before the "
            "new year starts.")
    assert r.explanation_defects(good, "Brother P-touch Desktop Label Printer", "Label Makers") == []


def test_items_outside_their_tags_category_or_shown_twice_are_defects(office) -> None:
    paper = next(i for i in office.items.values() if i.category_path[-1:] == ("Photo Paper",))
    other = next(i for i in office.items.values() if i.category_path and "Paper" not in i.category)
    path = paper.category
    shown = [(paper.item_id, path), (other.item_id, path), (paper.item_id, path),
             (paper.item_id, " > ".join(paper.category_path[:-1]))]
    assert r.item_defects(shown, office) == [[], ["item_off_category"], ["item_repeated"], ["item_repeated"]]
    assert r.lies_in("", ("Comedy", "Drama"), "Drama") and not r.lies_in("", ("Comedy",), "Drama")


def test_the_readability_run_audits_every_user_and_resumes_without_the_llm(
        fake_llm, small_dataset_dir, isolated_home, monkeypatch, tmp_path) -> None:
    from recgpt.eval import readability_report as rr
    from tests.unit.fakes import DEAD_ENDPOINT, fake_resources

    monkeypatch.setattr(rr, "check_endpoint", lambda ctx: None)
    monkeypatch.setattr(rr, "served_model_identity", lambda url, model, api_key="EMPTY": "fake-model")
    config = rr.ReadabilityConfig(dataset=str(small_dataset_dir), split="test", users=2,
                                  context={"base_url": DEAD_ENDPOINT, "model": "fake"})
    resources = fake_resources(small_dataset_dir)
    summary = rr.run_readability(config, isolated_home, show_progress=False, resources=resources)
    assert summary["users"] == 2 and summary["failed_users"] == 0 and summary["model"] == "fake-model"
    totals = summary["totals"]
    assert totals["persona"] == 6 and totals["tag"] > 0 and totals["explanation"] > 0 and totals["item"] > 0
    assert [row["defect"] for row in summary["defects"]] == list(r.DEFECTS)
    assert all(row["rate"] is None or 0 <= row["rate"] <= 1 for row in summary["defects"])
    asked = len(fake_llm.calls)
    again = rr.run_readability(config, isolated_home, show_progress=False, resources=resources)
    assert len(fake_llm.calls) == asked and again["defects"] == summary["defects"]  # read back, no LLM call
    md, js = rr.write_readability_report(summary, tmp_path)
    assert "fake-model" in md.read_text() and "| tag_filler | tag |" in md.read_text() and js.is_file()
    # counted again from the stored outputs, no LLM: the same counts, marked as re-audited
    recount = rr.reaudit(js, resources)
    assert len(fake_llm.calls) == asked and recount["defects"] == summary["defects"] and recount["reaudited"]
    assert "--reaudit" in rr.markdown(recount, "fake-model")
    with pytest.raises(RecGPTError, match="not a readability report"):
        rr.reaudit(tmp_path / "missing.json", resources)


def test_audit_counts_each_defect_over_its_unit(office) -> None:
    from recgpt.eval.readability_report import UserOutputs, audit

    paper = next(i for i in office.items.values() if i.category_path[-1:] == ("Photo Paper",))
    out = UserOutputs(user_id="u", personas=[("Global Planner", "paper"), ("Busy home office", "printer ink")],
                      tags=["photo paper", "photo paper inch x inches color paper with edge"],
                      shown=[(paper.item_id, paper.category), (paper.item_id, paper.category)],
                      explanations=[("The item fits them because it's called photo paper.", paper.title, paper.category)])
    rows = {row["defect"]: row for row in audit([out], office)["defects"]}
    assert (rows["persona_role_name"]["count"], rows["persona_role_name"]["of"]) == (1, 2)
    assert rows["tag_near_duplicate"]["rate"] == 0.5 and rows["tag_filler"]["count"] == 1
    assert rows["item_repeated"]["count"] == 1 and rows["item_off_category"]["count"] == 0
    assert rows["explanation_adds_nothing"]["rate"] == 1.0


def test_tidy_tag_takes_the_demo_filler_out_and_leaves_shopper_words(lexicon) -> None:
    from recgpt.text_fields import tidy_tag

    assert tidy_tag("binder index dividers x inches yellow and white dividers for") == "binder index dividers yellow and white"
    assert tidy_tag("photo paper inch x inches color paper with edge protecters x") == "photo paper color with edge protecters"
    assert tidy_tag("self-stick notes assorted colors pack black and gr black box") == "self-stick notes assorted colors black"
    assert tidy_tag("d-ring laminating system d-ring binders with d-ring laminat", max_chars=60) == "d-ring laminating system binders"
    for kept in ("battery pack", "mouse pad", "printer ink", "desktop staplers", "3d printer filament"):
        assert tidy_tag(kept) == kept
    assert tidy_tag("x x pack of") == ""  # nothing left: the arbiter names it after its category
    for demo in ("chalkboard assorted colors pack black and gr black box x x x", "ballpoint pens assorted colors pack of",
                 "manila file folders assorted colors x inches per pack of xmm"):
        tidy = tidy_tag(demo, max_chars=60)
        assert tidy and not r.has_filler(tidy) and not r.is_cut_or_misspelled(tidy, lexicon), tidy


def test_the_writer_resamples_an_echo_of_its_prompt_and_a_word_cut_to_a_letter() -> None:
    from pydantic import ValidationError

    from recgpt.agents.explainer import ExplanationOutput

    echo = "The item matches the tone, audience, emotional angle, rhetorical device and seasonal framing of the user's history."
    with pytest.raises(ValidationError, match="not of its instructions"):
        ExplanationOutput(explanation=echo)
    with pytest.raises(ValidationError, match="fragment"):
        ExplanationOutput(explanation="The ballpoint pens are assorted colors pack of r.")
    fine = "You keep running out of sticky notes, so this bright pack keeps your desk reminders going all term."
    assert ExplanationOutput(explanation=fine).explanation == fine  # "tone" inside "stone" or "keeps" is no echo
    assert ExplanationOutput(explanation="A stone-grey desk tray keeps the papers you filed last month in one place.")


def test_the_planner_tidies_role_names_people_repeated_names_and_foci_and_pasted_paths(lexicon) -> None:
    from recgpt.agents.planner import is_role_name, tidy_personas
    from recgpt.schema.state import Persona

    demo = [Persona(name="Global Planner", focus="home decor supplies and gesture accessories boxes inch yellow pack of"),
            Persona(name="Global Planner", focus="printer ink for the home office"),
            Persona(name="Rebecca", focus="Office & School Supplies > Paper > Copy & Multipurpose Paper"),
            Persona(name="Glen", focus="desk organisers"),
            Persona(name="Home printing", focus="printer ink for the home office", evidence=["Inkjet Printer Ink"])]
    spare = ["Inkjet Printer Ink", "Self-Stick Notes", "Desk Organizers"]
    tidy, note = tidy_personas(demo, lexicon.known, spare)
    # the title filler leaves the focus; the repeated focus takes the first spare category no persona names yet
    assert tidy[0].focus == "home decor supplies and gesture accessories boxes yellow"
    assert [p.name for p in tidy] == ["Home decor supplies", "Printer ink", "Copy & multipurpose paper",
                                      "Desk organisers", "Self-Stick Notes shopper"]
    assert tidy[4].focus == "self-stick notes" and tidy[4].evidence == ["Self-Stick Notes"]
    assert tidy[2].focus == "copy & multipurpose paper"
    assert note == ("4 renamed (a role, the prompt's example, a person's name or a repeated name); 1 duplicated or "
                    "empty focus(es) replaced by a history or evidence category; 1 focus path(s) cut to their last level")
    # seen on the Office policy: a path pasted as the name, an honorific, a focus with no word of the shop
    odd = [Persona(name="office & school supplies > tape > adhesive & fast-", focus="glue sticks for school"),
           Persona(name="Mrs. Crystal Whitehouse", focus="desk organisers"),
           Persona(name="Frank's cruise", focus="w")]
    fixed, _ = tidy_personas(odd, lexicon.known, ["Self-Stick Notes"])
    assert [(p.name, p.focus) for p in fixed] == [("Glue sticks for school", "glue sticks for school"),
                                                   ("Desk organisers", "desk organisers"),
                                                   ("Self-Stick Notes shopper", "self-stick notes")]
    assert r.persona_defects([(p.name, p.focus) for p in odd], lexicon)[:2] == [["persona_path_focus"],
                                                                                ["persona_person_name"]]
    assert r.persona_defects([(p.name, p.focus) for p in tidy], lexicon) == [[]] * 5
    assert is_role_name("Decision Arbiter") and is_role_name("planner") and not is_role_name("Wedding planner")
    untouched = [Persona(name="Small business owner", focus="desk trays"), Persona(name="Label maker", focus="tape"),
                 Persona(name="Teacher", focus="classroom supplies")]  # "Teacher" is a word this shop uses
    assert tidy_personas(untouched, lexicon.known) == (untouched, "")
    # no spare category left: the duplicate stays (the report counts it) rather than inventing a focus
    # the demo's personas after these fixes: title filler and words neither the shop nor English uses leave names
    demo2 = [Persona(name="Classic Passport Bag & Wallet Bag x", focus="classic passport bag & wallet"),
             Persona(name="fusan x x inch magnetic t-disk deck v", focus="extended memory storage card for hard drive drives")]
    raw = r.persona_defects([(p.name, p.focus) for p in demo2], lexicon)
    assert raw == [["persona_filler_or_misspelled"], ["persona_filler_or_misspelled"]]
    cleaned, note = tidy_personas(demo2, lexicon.known)
    assert [p.name for p in cleaned] == ["Classic Passport Bag & Wallet", "magnetic t-disk deck"]
    assert "2 name(s) lost title filler or unknown words" in note
    assert r.persona_defects([(p.name, p.focus) for p in cleaned], lexicon) == [[], []]
    # the untrained base on MovieLens names personas with the prompt's own example labels
    copies = [Persona(name="Teacher stocking a classroom", focus="chalk box supplies for classroom use"),
              Persona(name="Home office organizer", focus="hanging folders"),
              Persona(name="Late-night thriller fan", focus="thriller")]
    copied = r.persona_defects([(p.name, p.focus) for p in copies], lexicon)
    assert copied == [["persona_copied_example"], ["persona_copied_example"], []]
    renamed, _ = tidy_personas(copies, lexicon.known)
    assert [p.name for p in renamed] == ["Chalk box supplies", "Hanging folders", "Late-night thriller fan"]
    # a possessive of a word neither the shop nor English uses leaves a name; a prefixed word stays
    kept, _ = tidy_personas([Persona(name="Ashima's Office Supplies Store", focus="pre-printed hanging folders")],
                            lexicon.known)
    assert kept[0].name == "Office Supplies Store" and kept[0].focus == "pre-printed hanging folders"
    assert r.persona_defects([(p.name, p.focus) for p in kept + renamed], lexicon) == [[]] * 4
    twice = [Persona(name="Pen lover", focus="gel pens"), Persona(name="Pen fan", focus="gel pens")]
    assert [p.focus for p in tidy_personas(twice, lexicon.known, ["Gel Pens"])[0]] == ["gel pens", "gel pens"]


def test_the_labelled_set_corrupts_each_positive_in_known_ways_and_never_labels_a_positive_negative(lexicon) -> None:
    from recgpt.eval import judge_labels as jl

    tags = [("u1", ("gel pens", "Pens > Gel Pens")), ("u2", ("photo paper", "Paper > Photo Paper")),
            ("u3", ("gel pens x inches assorted colors pack of", "Pens > Gel Pens"))]
    rows = jl.corrupted(tags, jl.TAG_CORRUPTIONS, lambda p, kind, i: (jl.corrupt_tag(p[0], p[1], kind), p[1]),
                        key=lambda p: p[0])
    real = {p[0] for _, p in tags}
    assert rows and all(not row.label and row.owner == row.context_user and row.payload[0] not in real for row in rows)
    # u1's filler corruption is u3's positive text: dropped, not labelled negative
    assert [row.kind for row in rows if row.owner == "u1"] == ["cut", "path"]
    assert all(r.has_filler(row.payload[0]) for row in rows if row.kind == "filler")
    assert all(r.is_cut_or_misspelled(row.payload[0], lexicon) for row in rows if row.kind == "cut")
    text, title, other = ("After stocking up on file folders, you can label each one neatly with this printer.",
                          "Brother P-touch Label Printer", "Swingline Desktop Stapler")
    bad = {kind: jl.corrupt_explanation(text, title, other, kind) for kind in jl.EXPLANATION_CORRUPTIONS}
    assert "explanation_echo" in r.explanation_defects(bad["echo"], title, "Label Makers")
    assert r.is_unfinished(bad["unfinished"]) and r.adds_nothing(bad["title_only"], title, "Label Makers")
    assert "$5" in bad["wrong_fact"] and other in bad["other_title"]
    shuffled = jl.shuffle_label([("a", 1), ("b", 2), ("c", 3)], seed=0)
    assert {row.kind for row in shuffled} == {"real", "shuffled"}


def test_final_tags_lose_words_neither_the_catalogue_nor_english_uses(office, lexicon) -> None:
    from recgpt.agents.arbiter import tidied
    from recgpt.agents.words import is_english, known_words
    from recgpt.schema.state import FinalTag

    known = known_words(office)
    assert known == lexicon.known and is_english("charging") and not is_english("gelpp") and not is_english("gr")
    tag = FinalTag(tag="ballpoint pen medium point black gelpp", rationale="", persona_index=0, persona="p", rank=1,
                   category="Office & School Supplies > Writing & Correction Supplies > Pens & Refills > Ballpoint Pens")
    assert tidied(tag, known).tag == "ballpoint pen medium point black" and tidied(tag, known).written == tag.tag
    assert not r.is_cut_or_misspelled(tidied(tag, known).tag, lexicon)
    clean = tag.model_copy(update={"tag": "wireless charging mouse pad"})
    assert tidied(clean, known) == clean  # nothing to drop: the same object back
    alone = tag.model_copy(update={"tag": "gelpp"})
    assert tidied(alone, known).tag == "ballpoint pens"  # nothing left: the category's last level


def test_the_fallback_sentence_never_ends_on_a_cut_title() -> None:
    from recgpt.agents.explainer import fallback_sentence

    for title, category in (("Hammermill Laser Print Paper - 8 1/2'' x 11'' Letter Size", "Paper > Laser Printer Paper"),
                            ("Canon PIXMA MX922 Wireless Color Photo Printer with Scanner, Copier", "Printers > Photo Printers")):
        text = fallback_sentence("", title, category)
        assert r.explanation_defects(text, title, category) == [], text
    assert fallback_sentence("", "DigiOrange® White Adhesive Labels, 30 per sheet", "Address Labels") == (
        "Picked for your interest in address labels: DigiOrange White Adhesive Labels.")
    assert fallback_sentence("", "Canon PIXMA MX922 Wireless Color Photo Printer with Scanner", "Photo Printers") == (
        "Picked for your interest in photo printers: Canon PIXMA MX922 Wireless Color Photo Printer.")


def test_a_numbered_repeat_of_a_persona_is_a_duplicate_and_the_guard_gives_it_a_spare_category(lexicon) -> None:
    from recgpt.agents.planner import name_key, tidy_personas
    from recgpt.schema.state import Persona

    assert name_key("Comedy shopper (2)") == name_key("comedy  shopper") == "comedy shopper"
    # the demo (user 1235): two foci sharing 5 of 9 words, so both named "Weight mailers black padded"
    demo = [Persona(name="Box Office Plus", focus="office storage containers for desk"),
            Persona(name="Weight mailers black padded", focus="weight mailers black padded letter size sheets"),
            Persona(name="Weight mailers black padded", focus="weight mailers black padded letter size note cards")]
    numbered = [(p.name, p.focus) for p in demo[:2]] + [("Weight mailers black padded (3)", demo[2].focus)]
    assert r.persona_defects(numbered, lexicon)[2] == ["persona_duplicate"]  # a number is not a second persona
    tidy, note = tidy_personas(demo, lexicon.known, ["Padded Mailers", "Self-Stick Notes"])
    assert [(p.name, p.focus) for p in tidy][2] == ("Self-Stick Notes shopper", "self-stick notes")
    assert "1 duplicated or empty focus(es) replaced" in note
    assert r.persona_defects([(p.name, p.focus) for p in tidy], lexicon) == [[], [], []]
    # no spare category left: numbered, and counted as the duplicate it is
    alone, _ = tidy_personas(demo, lexicon.known, [])
    assert alone[2].name == "Weight mailers black padded (3)"
    assert r.persona_defects([(p.name, p.focus) for p in alone], lexicon)[2] == ["persona_duplicate"]


def test_persona_words_lose_cut_tokens_repeats_and_a_dangling_end(lexicon) -> None:
    from recgpt.agents.planner import shopper_words

    # seen in the Office test run of this guard's predecessor: each was a persona_filler_or_misspelled defect
    seen = {"teacher working on a project in": "teacher working on a project",
            "Ergonomic Notebooks frames and notebook holders assorted in": "Ergonomic Notebooks frames and notebook holders assorted",
            "office storage desk with ottoman blue clearcase-0": "office storage desk with ottoman blue",
            "bottle white packaging for sheets digital materials x-1": "bottle white packaging for sheets digital materials",
            "paper a a roll printer ink": "paper a roll printer ink"}
    for raw, clean in seen.items():
        assert shopper_words(raw, lexicon.known, 10) == clean
        assert r.persona_defects([("Label", clean)], lexicon) == [[]]
    assert shopper_words("desk organisers & file trays", lexicon.known, 10) == "desk organisers & file trays"
