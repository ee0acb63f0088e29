"""The introduction's claims table reads each chapter's saved verdicts; it computes none itself."""

import json

from deconvnet.book.claims import CLAIMS, claims_table, write_claims_table
from deconvnet.book.runner import chapters


def test_every_claim_names_a_chapter_of_the_book():
    names = {c.name for c in chapters()}
    assert {c.chapter for c in CLAIMS} <= names
    assert len({(c.chapter, c.key) for c in CLAIMS}) == len(CLAIMS), "one row per measurement"


def test_rows_show_the_saved_interval_and_verdict_or_say_what_is_missing(tmp_path):
    first = CLAIMS[0]
    saved = {"preset": "quick", "verdicts": {first.key: "supported"},
             "differences": {first.key: {"value": 0.021, "low": 0.004, "high": 0.039}}}
    (tmp_path / f"{first.chapter}.json").write_text(json.dumps(saved))
    lines = claims_table(tmp_path).splitlines()
    row = next(line for line in lines if line.startswith(f"| {first.claim} |"))
    assert "+2.1 points [+0.4, +3.9]" in row and "**supported**" in row
    same_chapter = next(c for c in CLAIMS[1:] if c.chapter == first.chapter)
    assert "not measured on this preset" in next(x for x in lines if x.startswith(f"| {same_chapter.claim} |"))
    other = next(c for c in CLAIMS if c.chapter != first.chapter)
    assert f"{other.chapter} has not run" in next(x for x in lines if x.startswith(f"| {other.claim} |"))
    assert "`quick` preset" in lines[-1]
    write_claims_table(tmp_path, tmp_path / "claims_table.md")
    assert (tmp_path / "claims_table.md").read_text() == claims_table(tmp_path)
