"""The "Cost" appendix page, written from the benchmark results in ``benchmarks/results/*.json``.

``make bench`` measures this machine (``benchmarks/bench.py`` writes ``cpu.json``) and then calls
``write_cost_page``; results measured elsewhere (``throughput_h200.json``, ``engine_h200.json``) are shown
beside it, each table under the hardware that produced it. Pure formatting: every number on the page comes
from a JSON file, and the only figures typed in here are the SegNet paper's, which are labelled as theirs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from deconvnet.files import atomic_path

# Badrinarayanan et al. 2017 (SegNet), Table 6: DeconvNet in Caffe on an NVIDIA Titan, one 360x480 image
SEGNET = {"forward_ms": 474.65, "backward_ms": 602.15, "training_memory_mb": 9731,
          "where": "Caffe on an NVIDIA Titan GPU, one 360x480 image"}
STEP_NAMES = {"proposals": "proposals (selective search)", "crop": "cut and resize windows",
              "network": "network", "aggregate": "aggregation (Eq. 1, max)", "crf": "dense CRF (10 iterations)"}


def load_results(folder: Path) -> dict[str, dict]:
    """Every ``*.json`` in ``folder`` by file name, in name order."""
    return {p.name: json.loads(p.read_text()) for p in sorted(Path(folder).glob("*.json"))}


def _fmt(value, digits: int = 1) -> str:
    """A number for a table cell; a dash where there is none."""
    if value is None:
        return "-"
    if isinstance(value, float) and abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"


def _table(header: list[str], rows: list[list]) -> list[str]:
    """A Markdown table, every cell formatted with ``_fmt`` unless it is already text."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c if isinstance(c, str) else _fmt(c) for c in row) + " |" for row in rows]
    return lines + [""]


def throughput_part(data: dict) -> dict | None:
    """The throughput results inside a results file: the file itself or its ``throughput`` entry."""
    part = data.get("throughput", data)
    return part if isinstance(part, dict) and "rows" in part and "matmul_gflops" in part else None


def ceiling(matmul: dict[str, float], precision: str) -> float | None:
    """The best measured matrix-multiply GFLOP/s for a row's precision (``fp32`` covers ``fp32_onednn``)."""
    base = re.split(r"[+-]", precision)[0]  # "fp32-nchw", "bf16+cl": the number format comes first
    found = [v for k, v in matmul.items() if k.split("_")[0] == base]
    return max(found) if found else None


def _share(value: float | None, top: float | None) -> str:
    """``value`` as a percentage of ``top``; one decimal below 10%, where whole percents say little."""
    if value is None or not top:
        return "-"
    return f"{value / top:.1%}" if value / top < 0.095 else f"{value / top:.0%}"


def throughput_rows(part: dict) -> list[list]:
    """One table row per measured model x preset x variant."""
    rows = []
    for r in part["rows"]:
        top = ceiling(part["matmul_gflops"], r["precision"])
        side = r.get("side")
        rows.append([r["model"], r["preset"], f"{side}x{side}" if side else "preset's crop", r["batch"],
                     r.get("variant", r["precision"]), r["forward_img_s"], r["forward_gflops"],
                     _share(r["forward_gflops"], top), r.get("train_img_s"), r.get("train_gflops"),
                     _share(r.get("train_gflops"), top)])
    return rows


def variant_summary(part: dict) -> list[str]:
    """Per model and preset with several variants: the shipped network's share of the ceiling, then the others'.

    Each share is against the ceiling of the row's own precision; older files, without a ``shipped`` flag,
    listed the shipped network first.
    """
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in part["rows"]:
        groups.setdefault((r["model"], r["preset"]), []).append(r)
    lines = []
    for (model, preset), rows in groups.items():
        if len(rows) < 2 or "variant" not in rows[0]:
            continue
        shipped = next((r for r in rows if r.get("shipped")), rows[0])

        def share(r: dict) -> str:
            return _share(r["forward_gflops"], ceiling(part["matmul_gflops"], r["precision"]))

        others = "; ".join(f"*{r['variant']}* {share(r)} (shipped is "
                           f"{shipped['forward_img_s'] / r['forward_img_s']:.2f}x faster)"
                           if r["forward_img_s"] < shipped["forward_img_s"] else
                           f"*{r['variant']}* {share(r)} ({r['forward_img_s'] / shipped['forward_img_s']:.2f}x "
                           "faster than shipped)" for r in rows if r is not shipped)
        lines.append(f"- {model}, `{preset}`, forward: *{shipped['variant']}* at {share(shipped)} of the "
                     f"ceiling; {others}.")
    return lines + [""] if lines else []


def throughput_section(results: dict[str, dict]) -> list[str]:
    """Images/s and GFLOP/s per machine, against that machine's own matrix-multiply ceiling."""
    out = ["## Throughput", "",
           "Images per second and achieved GFLOP/s, forward (eval mode, no gradients) and forward + backward (one",
           "training step; backward counted as twice the forward's FLOPs), against the same machine's",
           "matrix-multiply GFLOP/s measured in the same run: the practical ceiling for networks made of",
           "convolutions. On the CPU the ceiling is the better of MKL's `sgemm` and oneDNN's kernel (the one the",
           "convolutions use).", ""]
    header = ["model", "preset", "input", "batch", "variant", "forward img/s", "forward GFLOP/s", "of ceiling",
              "fwd+bwd img/s", "fwd+bwd GFLOP/s", "of ceiling"]
    for name, data in results.items():
        part = throughput_part(data)
        if part is None:
            continue
        tops = ", ".join(f"{k} {v:,.0f}" for k, v in part["matmul_gflops"].items())
        out += [f"### {part['device']}", "",
                f"From `{name}`: torch {part.get('torch', '?')}, {part.get('threads', '?')} threads; "
                f"matrix-multiply ceiling (GFLOP/s): {tops}.", ""]
        out += _table(header, throughput_rows(part)) + variant_summary(part)
        if not any("shipped" in r for r in part["rows"]):
            out += ["These rows come from a run before every model was built channels-last "
                    "(`deconvnet.model.fastpath`): its `fp32` rows ran NCHW, its `+cl` rows channels-last.", ""]
    if any(float(cell[:-1]) > 100 for cell in re.findall(r"\| ([\d.]+%) \|", "\n".join(out))):
        out += ["A share above 100% means the convolutions ran on a faster unit than the ceiling's matrix",
                "multiply: on NVIDIA GPUs PyTorch runs fp32 convolutions on TF32 tensor cores by default (cuDNN),",
                "fp32 matrix multiplies in full fp32.", ""]
    if "preset's crop" in "".join(out):
        out += ["Rows whose input reads \"preset's crop\" were measured at each preset's own crop size.", ""]
    return out


def split_section(results: dict[str, dict]) -> list[str]:
    """Milliseconds per layer kind of one forward pass, per variant, where the benchmark recorded them."""
    out = []
    for data in results.values():
        part = throughput_part(data)
        rows = [r for r in (part or {}).get("rows", []) if "forward_split_s" in r]
        for model, preset in dict.fromkeys((r["model"], r["preset"]) for r in rows):
            group = [r for r in rows if (r["model"], r["preset"]) == (model, preset)]
            kinds = list(dict.fromkeys(k for r in group for k in r["forward_split_s"]))
            table = [[k] + [1000 * r["forward_split_s"].get(k, 0.0) / r["batch"] for r in group] for k in kinds]
            out += [f"### {model}, {preset} preset, {part['device']}", ""]
            out += _table(["ms per image"] + [r.get("variant", r["precision"]) for r in group], table)
    if not out:
        return []
    intro = ["## Where a forward pass spends its time", "",
             "One warm forward pass timed layer by layer (hooks around every convolution, BN, ReLU, pool and",
             "unpool; `rest` is what lies between them), per image. Every model of the package is built on the",
             "CPU fast path of `deconvnet.model.fastpath`, with both fixes below; the other variants undo them:",
             "",
             "- **channels-last.** oneDNN computes in a channels-last (blocked) layout. Given NCHW tensors, every",
             "  convolution first reorders its input into that layout and its output back, which costs most where",
             "  the maps are large and the channels few (conv1, conv2, the last decoder stages); max pooling with",
             "  switches is also much slower on NCHW. Pooling, unpooling (`max_unpool2d`), BN and ReLU all run",
             "  natively channels-last, so a channels-last model makes no copies between layers.",
             "- **fc as matmul.** fc6 (a 7x7 kernel over the whole 7x7 map) and fc6-deconv (a 7x7 kernel",
             "  painted from a 1x1 map) each carry 103 M weights. oneDNN reorders that 411 MB weight on every",
             "  call, which makes them run at a few GFLOP/s; as matrix products over the weight read in place",
             "  (`deconvnet.model.fastpath`) they are memory-bound instead, and much faster forward and backward.",
             "- BN and ReLU read and write every activation once for little arithmetic: memory-bound, and what",
             "  is left between the convolutions and the ceiling once both fixes are in.", ""]
    return intro + out


def instance_section(instance: dict | None) -> list[str]:
    """Seconds per step of instance-wise inference of one image, batched and one window at a time."""
    if not instance:
        return []
    runs = instance["runs"]
    header = ["step"] + [f"{r['batch']} window{'s' if r['batch'] > 1 else ''} per pass (s)" for r in runs]
    header += ["share" for _ in runs[:1]]
    first = runs[0]
    rows = [[STEP_NAMES.get(k, k)] + [r["seconds"][k] for r in runs] + [_share(first["seconds"][k], first["total_s"])]
            for k in first["seconds"]]
    rows.append(["total"] + [r["total_s"] for r in runs] + ["100%"])
    h, w = instance["image_hw"]
    out = ["## Instance-wise inference of one image", "",
           f"One generated scene of {w}x{h} pixels (width x height), the top {instance['top_n']} of "
           f"{instance['proposals_found']} selective-search proposals as windows ({runs[0]['windows']} segmented),",
           f"`{instance['preset']}` preset, aggregated by maximum, then the dense CRF (the release's settings); the",
           "share is of the batched total.", ""]
    out += _table(header, rows)
    if len(runs) > 1:
        a, b = runs[0]["seconds"]["network"], runs[1]["seconds"]["network"]
        if 0.95 < b / a < 1.05:  # within the run-to-run noise of a 2-core timing
            out += [f"Batching the windows hardly changes the network step here ({a:.1f} s batched, {b:.1f} s "
                    "one window per pass).", ""]
        else:
            faster = f"{b / a:.1f}x faster" if b > a else f"{a / b:.1f}x slower"
            out += [f"Batching the windows makes the network step {faster} than one window per pass.", ""]
    return out


def training_setting_section(cpu: dict | None) -> list[str]:
    """Crops/s of a training step at the ``cpu`` preset's own crop and batch, against the matmul ceiling."""
    rows = (cpu or {}).get("training_setting")
    part = throughput_part(cpu or {})
    if not rows or part is None:
        return []
    table = throughput_rows({"rows": rows, "matmul_gflops": part["matmul_gflops"]})
    return ["## Training at the cpu preset's setting", "",
            "The learning study (appendix) chose the crop and batch the `cpu` preset trains with; this is what a",
            f"training step costs there on {cpu['hardware']['name']}, without data loading"
            + (f" (measured {cpu['part_created']['training_setting']})" if "training_setting" in
               cpu.get("part_created", {}) else "") + ".", "",
            *_table(["model", "preset", "input", "batch", "variant", "fwd img/s", "fwd GFLOP/s", "of ceiling",
                     "train crops/s", "train GFLOP/s", "of ceiling"], table)]


def _how(row: dict) -> str:
    if row["measured"]:
        return "measured"
    return "**extrapolated**, at least (" + ("the run was killed" if row.get("killed") else "would not fit here") + ")"


def memory_section(memory: dict | None) -> list[str]:
    """Peak memory of one training step per batch size: measured, or extrapolated and labelled so."""
    if not memory:
        return []
    rows = [[r["batch"], r["peak_mib"], r.get("baseline_mib"), _how(r)] for r in memory["rows"]]
    h, w = memory["size"]
    return ["## Training memory", "",
            f"Peak resident memory of one training step (forward, backward, SGD with momentum) of the "
            f"`{memory['preset']}` DeconvNet on {w}x{h} crops, each batch size in a fresh process. The",
            "baseline is the process before the step: weights, momentum buffers and the libraries.", "",
            *_table(["batch", "peak (MiB)", "baseline (MiB)", "how"], rows),
            f"Autograd keeps {_fmt(memory.get('saved_mib_per_image'))} MiB of activations per image for the backward "
            f"pass (counted on the meta device); between the two largest batches run, the peak grew by "
            f"{_fmt(memory.get('growth_mib_per_image'))} MiB per image. Small batches peak while the 1 GB of gradients "
            "is made, large ones while the activations are held, so the growth per image rises with the batch; an "
            "extrapolated batch adds the larger of the two per image to the largest batch run, a lower bound.", ""]


def segnet_section(segnet: dict | None, hardware_name: str) -> list[str]:
    """SegNet's DeconvNet figures beside ours for one image of about their size."""
    if not segnet:
        return []
    h, w = segnet["size"]
    flops = segnet["flops"]
    fwd, bwd = 1000 * segnet["forward_s"], 1000 * segnet["backward_s"]
    mb = segnet["peak_mib"] * 2**20 / 1e6  # theirs is in MB
    theirs_gflops = flops / SEGNET["forward_ms"] * 1e3 / 1e9
    rows = [["forward (ms)", f"{SEGNET['forward_ms']}", fwd, f"{fwd / SEGNET['forward_ms']:.2f}"],
            ["backward (ms)", f"{SEGNET['backward_ms']}", bwd, f"{bwd / SEGNET['backward_ms']:.2f}"],
            ["training memory (MB)", f"{SEGNET['training_memory_mb']}", mb, f"{mb / SEGNET['training_memory_mb']:.2f}"],
            ["forward GFLOP/s (our FLOP count)", _fmt(theirs_gflops), flops / fwd * 1e3 / 1e9,
             f"{flops / fwd * 1e3 / 1e9 / theirs_gflops:.2f}"]]
    return ["## Beside the SegNet paper", "",
            "The SegNet paper timed DeconvNet {cite}`badrinarayanan2017segnet` (their Table 6): "
            f"{SEGNET['where']}. Ours (`{segnet.get('preset', 'paper')}` preset): {hardware_name}, one {h}x{w}",
            "image (height x width: the nearest size to theirs that our network takes), a warm training step;",
            "our memory is the process's peak resident set, theirs GPU memory. The FLOP count of the forward",
            f"pass at {h}x{w}, computed from the layer shapes, is {flops / 1e9:,.1f} GFLOP; the last row divides",
            "it by each forward time.",
            "", *_table(["", "SegNet paper", "ours", "ours / theirs"], rows)]


def engine_section(results: dict[str, dict]) -> list[str]:
    """The training engine end to end (``benchmarks/engine_smoke.py``), where such a file exists."""
    rows = [[d["device"], d["preset"], d["global_batch"], d["crops_per_s"], d.get("peak_mib")]
            for d in results.values() if "crops_per_s" in d]
    if not rows:
        return []
    return ["## The training engine", "",
            "`train.train` itself on synthetic squares (`benchmarks/engine_smoke.py`): data loading, autocast,",
            "checkpoints and logging included.", "",
            *_table(["device", "preset", "crops per step", "crops/s", "peak GPU memory (MiB)"], rows)]


def _parts(parts: dict | None) -> str:
    return " (" + ", ".join(f"{k} {v:.0f} s" for k, v in parts.items()) + ")" if parts else ""


def run_section(cpu: dict | None) -> list[str]:
    """When and how long ``make bench`` ran here, and how busy the machine was."""
    if not cpu:
        return []
    load = [", ".join(f"{v:g}" for v in cpu.get(k) or []) or "?" for k in ("load_average_start", "load_average")]
    hw = cpu["hardware"]
    return ["## This run", "",
            f"`make bench` on {hw['name']} ({hw['torch_threads']} torch threads, "
            f"{', '.join(hw['vector_units']) or 'no AVX'}), {cpu.get('created', '?')}: "
            f"{_fmt(cpu.get('wall_s'))} s in all{_parts(cpu.get('part_s'))}. Load average (1, 5, 15 min) at the "
            f"start {load[0]}, at the end {load[1]}; with more runnable processes than cores, the CPU numbers are "
            "lower than the machine's.", ""]


def render_cost_page(results: dict[str, dict]) -> str:
    """The whole page as MyST Markdown."""
    cpu = results.get("cpu.json")
    lines = ["# Cost", "",
             "What each stage costs, measured: throughput of both networks against the machine's own ceiling,",
             "instance-wise inference of one image, the memory of a training step, and the SegNet paper's",
             "DeconvNet figures beside ours. `make bench` measures this machine and writes this page from",
             "`benchmarks/results/*.json`; do not edit it by hand. Each table names the hardware it was measured",
             "on; FLOPs are computed from the layer shapes (`deconvnet.model.summary`), never copied.", ""]
    lines += throughput_section(results) + split_section(results)
    if cpu:
        lines += instance_section(cpu.get("instance")) + training_setting_section(cpu)
        lines += memory_section(cpu.get("memory"))
        lines += segnet_section(cpu.get("segnet"), cpu["hardware"]["name"])
    lines += engine_section(results) + run_section(cpu)
    return "\n".join(lines).rstrip() + "\n"


def write_cost_page(folder: Path, path: Path) -> Path:
    """Render the page from ``folder``'s JSON files and write it atomically to ``path``."""
    text = render_cost_page(load_results(folder))
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)
