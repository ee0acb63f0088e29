"""The paper's claims on our data: one table, collected from the chapters' saved results.

Each chapter measures its claims and saves, in ``book/results/<chapter>.json``, a ``differences`` entry (the
measured difference with its 95% bootstrap interval) and a ``verdicts`` entry (supported / not supported /
inconclusive, computed from that interval) per claim. ``claims_table`` reads them back and writes one row per
claim of the paper, with the paper's number beside ours, so the introduction shows every verdict in one
place without recomputing any of them. A claim whose chapter has not run, or did not measure it, says so.

Written by the book runner (``book.update_manifest``) after every chapter, into ``book/claims_table.md``,
which ``book/intro.md`` includes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from deconvnet.files import atomic_path
from deconvnet.infer.intervals import in_points


@dataclass(frozen=True)
class Claim:
    """One claim of the paper and where its chapter saved the measurement."""

    claim: str  # the paper's statement, in our words
    paper: str  # the paper's number or statement (its section)
    chapter: str  # the result file's name, e.g. "04_two_stage_training"
    key: str  # the claim's key in that result's ``verdicts``
    measure: str  # what the difference is, e.g. "mean IoU, two_stage - no_bn"
    path: tuple[str, ...] = ()  # where its difference sits under ``differences``; () = under ``key``


CLAIMS = (
    Claim("batch normalisation is needed to train the deep decoder", "training without BN got stuck (Sec. 4.1)",
          "04_two_stage_training", "two_stage vs no_bn", "mean IoU, two stages with BN - without BN"),
    Claim("two-stage training beats training on proposal windows alone", "no number (Sec. 4.2)",
          "04_two_stage_training", "two_stage vs stage2_only", "mean IoU, two stages - proposal windows only"),
    Claim("lower decoder layers give the overall shape", "Fig. 4 (Sec. 3.2)", "03_deconvolution",
          "shape early", "foreground IoU of a linear probe, deconv1 - deconv5 (shape early: within 5 pts)"),
    Claim("higher decoder layers give class-specific detail", "Fig. 4 (Sec. 3.2)", "03_deconvolution",
          "detail late", "accuracy on objects of a linear probe, deconv1 - deconv5"),
    Claim("instance-wise inference beats one whole-image pass", "Sec. 5.1", "05_aggregation",
          "instance_beats_whole", "mean IoU, instance-wise max - whole image", ("mean_iou", "max_vs_whole")),
    Claim("instance-wise inference handles small objects better than one whole-image pass",
          "better at both ends of the scale (Sec. 5.1)", "05_aggregation", "helps_small",
          "instance IoU, instance-wise max - whole image", ("instance_iou_max_vs_whole", "small")),
    Claim("instance-wise inference handles large objects better than one whole-image pass",
          "better at both ends of the scale (Sec. 5.1)", "05_aggregation", "helps_large",
          "instance IoU, instance-wise max - whole image", ("instance_iou_max_vs_whole", "large")),
    Claim("max aggregation of the windows' scores is at least as good as their average",
          "max chosen (Eq. 1, 2)", "05_aggregation", "max_at_least_mean", "mean IoU, max - average",
          ("mean_iou", "max_vs_mean")),
    Claim("DeconvNet keeps finer detail than FCN-8s", "DeconvNet fine detail, FCN overall shape (Sec. 5.2)",
          "06_ensemble", "detail_boundary", "boundary F1, DeconvNet - FCN-8s"),
    Claim("the ensemble beats DeconvNet", "71.7% vs 69.6% on VOC 2012 test", "06_ensemble", "ens_deconvnet",
          "mean IoU, EDeconvNet - DeconvNet"),
    Claim("the ensemble beats FCN-8s", "71.7% vs 62.2% on VOC 2012 test", "06_ensemble", "ens_fcn",
          "mean IoU, EDeconvNet - FCN-8s"),
    Claim("the dense CRF improves the ensemble", "+0.8 points (72.5% vs 71.7%; +0.9 for DeconvNet)", "06_ensemble",
          "crf_ens", "mean IoU, EDeconvNet+CRF - EDeconvNet"),
)


def claim_row(claim: Claim, results: Path) -> dict:
    """The claim's row: ours with its interval, and the chapter's verdict, read from its saved result."""
    path = results / f"{claim.chapter}.json"
    row = {"claim": claim.claim, "the paper": claim.paper, "measure": claim.measure}
    if not path.is_file():
        return row | {"ours [95% interval]": "-", "verdict": f"not measured: {claim.chapter} has not run"}
    saved = json.loads(path.read_text())
    verdict = saved.get("verdicts", {}).get(claim.key)
    difference = saved.get("differences", {})
    for part in claim.path or (claim.key,):
        difference = difference.get(part, {}) if isinstance(difference, dict) else None
    if verdict is None:
        return row | {"ours [95% interval]": "-", "verdict": "not measured on this preset"}
    shown = in_points(difference) if difference and "value" in difference else "-"  # every measure is a share
    return row | {"ours [95% interval]": shown, "verdict": verdict, "preset": saved.get("preset", "?")}


def claims_table(results: Path) -> str:
    """The introduction's table as Markdown: one row per claim, and the presets the rows come from."""
    rows = [claim_row(c, results) for c in CLAIMS]
    chapters = {c.chapter: c.chapter.split("_")[0] for c in CLAIMS}
    lines = ["| the paper's claim | the paper | what we measure | ours [95% interval] | verdict | chapter |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['claim']} | {r['the paper']} | {r['measure']} | {r['ours [95% interval]']} | "
              f"**{r['verdict']}** | {chapters[c.chapter]} |" for r, c in zip(rows, CLAIMS, strict=True)]
    presets = sorted({r["preset"] for r in rows if "preset" in r})
    lines += ["", f"Measured under the `{'`, `'.join(presets) or 'no'}` preset; written from `book/results` by "
              "`python -m deconvnet book` after each chapter (`deconvnet.book.claims`)."]
    return "\n".join(lines) + "\n"


def write_claims_table(results: Path, path: Path) -> None:
    """Write ``claims_table`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(claims_table(results))
