"""The Cost page: every number from the result files, each table under its hardware, extrapolations labelled."""

import json

from deconvnet.book.cost import ceiling, render_cost_page, variant_summary, write_cost_page

ROW = {"model": "deconvnet", "preset": "paper", "batch": 4, "precision": "fp32", "forward_img_s": 2.0,
       "forward_gflops": 131.0, "forward_ms_per_img": 500.0}
CPU = {
    "hardware": {"name": "AMD EPYC, 2 cores", "torch_threads": 2, "vector_units": ["avx2", "avx512f"], "torch": "2"},
    "throughput": {"device": "AMD EPYC, 2 cores", "torch": "2", "threads": 2,
                   "matmul_gflops": {"fp32": 180.0, "fp32_onednn": 262.0},
                   "rows": [ROW | {"side": 224, "variant": "fp32, NCHW (as shipped)", "train_img_s": 0.5,
                                   "train_gflops": 98.25, "forward_split_s": {"convolutions": 1.6, "rest": 0.4}}]},
    "instance": {"preset": "paper", "image_hw": [375, 500], "top_n": 50, "proposals_found": 900,
                 "runs": [{"batch": 50, "windows": 50, "total_s": 40.0,
                           "seconds": {"proposals": 1.0, "crop": 0.5, "network": 30.0, "aggregate": 0.5, "crf": 8.0}},
                          {"batch": 1, "windows": 50, "total_s": 70.0,
                           "seconds": {"proposals": 1.0, "crop": 0.5, "network": 60.0, "aggregate": 0.5, "crf": 8.0}}]},
    "memory": {"preset": "paper", "size": [224, 224], "saved_mib_per_image": 238.0, "growth_mib_per_image": 400.0,
               "rows": [{"batch": 8, "peak_mib": 6200.0, "baseline_mib": 2900.0, "measured": True},
                        {"batch": 64, "peak_mib": 28600.0, "measured": False}]},
    "segnet": {"size": [352, 480], "flops": 239_000_000_000, "forward_s": 2.0, "backward_s": 4.0, "peak_mib": 4000.0},
    "wall_s": 420.0, "created": "2026-11-26 08:00 UTC", "load_average_start": [0.1, 0.2, 0.3],
    "load_average": [1.0, 1.0, 1.0],
}
H200 = {"device": "NVIDIA H200", "torch": "2.11", "threads": 16, "matmul_gflops": {"fp32": 50000.0, "bf16": 780000.0},
        "rows": [ROW | {"precision": "bf16+cl", "forward_gflops": 130000.0, "batch": 16}]}
ENGINE = {"device": "NVIDIA H200", "preset": "paper", "global_batch": 32, "crops_per_s": 667.6, "peak_mib": 6892.0}


def test_ceiling_takes_the_best_kernel_of_the_rows_precision():
    assert ceiling({"fp32": 180.0, "fp32_onednn": 262.0, "bf16": 1e3}, "fp32") == 262.0
    assert ceiling({"fp32": 180.0, "bf16": 1e3}, "bf16+cl") == 1e3
    assert ceiling({"fp32": 180.0}, "bf16") is None


def test_page_names_hardware_and_labels_extrapolation():
    page = render_cost_page({"cpu.json": CPU, "engine_h200.json": ENGINE, "throughput_h200.json": H200})
    assert page.startswith("# Cost\n")
    assert "### AMD EPYC, 2 cores" in page and "### NVIDIA H200" in page
    assert "| 131 | 50% |" in page, "forward GFLOP/s against the better fp32 ceiling (262)"
    assert "17%" in page, "the H200 bf16 row against the bf16 ceiling"
    assert "**extrapolated**" in page and "grew by 400 MiB per image" in page
    assert "474.65" in page and "{cite}`badrinarayanan2017segnet`" in page
    assert "| forward (ms) | 474.65 | 2,000 | 4.21 |" in page
    assert "2.0x faster" in page, "batched vs one window per pass"
    assert "| 668 |" in page and "420 s in all" in page
    assert page.count("a run before every model was built channels-last") == 2, "both files predate the flag"


def test_page_without_a_cpu_run_still_renders(tmp_path):
    (tmp_path / "throughput_h200.json").write_text(json.dumps(H200))
    page = write_cost_page(tmp_path, tmp_path / "book" / "cost.md").read_text()
    assert "### NVIDIA H200" in page and "Training memory" not in page
    assert [p.name for p in (tmp_path / "book").iterdir()] == ["cost.md"], "no temporary file left behind"


def test_variant_summary_puts_the_shipped_network_first():
    part = {"matmul_gflops": {"fp32": 200.0},
            "rows": [ROW | {"precision": "fp32-nchw", "variant": "NCHW (before)", "forward_gflops": 92.0},
                     ROW | {"variant": "shipped", "shipped": True, "forward_gflops": 178.0, "forward_img_s": 3.87}]}
    [line, _] = variant_summary(part)
    assert "`paper`, forward: *shipped* at 89% of the ceiling" in line
    assert "*NCHW (before)* 46% (shipped is 1.94x faster)" in line


def test_batching_within_noise_is_not_called_faster():
    runs = [{"batch": 50, "windows": 50, "total_s": 21.0, "seconds": {"network": 20.1}},
            {"batch": 1, "windows": 50, "total_s": 20.0, "seconds": {"network": 19.4}}]
    page = render_cost_page({"cpu.json": CPU | {"instance": CPU["instance"] | {"runs": runs}}})
    assert "hardly changes the network step here (20.1 s batched, 19.4 s one window per pass)" in page
    assert "faster than one window" not in page


def test_training_setting_section_shows_crops_per_second_against_the_ceiling():
    row = ROW | {"preset": "cpu", "side": 64, "batch": 8, "variant": "as shipped", "train_img_s": 7.0,
                 "train_gflops": 90.0}
    page = render_cost_page({"cpu.json": CPU | {"training_setting": [row],
                                               "part_created": {"training_setting": "2026-12-01 12:00 UTC"}}})
    section = page.split("## Training at the cpu preset's setting")[1].split("##")[0]
    assert "measured 2026-12-01 12:00 UTC" in section
    assert "| 64x64 | 8 |" in section and "| 7.0 |" in section and "34%" in section  # 90 of the 262 ceiling
    assert "## Training at the cpu preset's setting" not in render_cost_page({"cpu.json": CPU})
