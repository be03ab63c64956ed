"""The bench scripts on their documented invocations (a review of 2026-12-06 found each of these
crashing or printing less than its docstring says)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).parents[1]
BENCH = ROOT / "bench"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_results_table_reads_a_results_csv_of_before_the_seeds():
    table = _script("results_table").markdown(pd.read_csv(BENCH / "results" / "pipeline_fashion_mnist_2026-11-30.csv"))
    assert "| original | 90.11% (1) | — |" in table and "| DP, budget 1.3× | 90.10% (1) | -0.01 |" in table


def test_predictor_accuracy_finds_the_shared_tables_and_knows_a_relabelled_copy(tmp_path, capsys):
    script = _script("predictor_accuracy")
    assert script.SHARED == ROOT.parent / "shared" / "data"  # ../shared/data beside the checkout
    shipped = ROOT / "lut" / "h100_torch_eager" / "mobilenet_v2_224_b1_torch_h100_tf32.csv"
    copy = pd.read_csv(shipped).assign(precision="fp32", timing_method=None)  # as the shared copy is labelled
    copy.to_csv(tmp_path / "relabelled.csv", index=False)
    assert script.measurements_digest(tmp_path / "relabelled.csv") == script.measurements_digest(shipped)
    other = copy.assign(latency_ms=copy["latency_ms"] * 1.01)
    other.to_csv(tmp_path / "other.csv", index=False)
    assert script.measurements_digest(tmp_path / "other.csv") != script.measurements_digest(shipped)
    script.section_transfer({"one": pd.read_csv(shipped)}, {"one": None}, 30)  # one table: no prior to transfer from
    assert "no other table to be its prior" in capsys.readouterr().out


def test_the_importance_report_prints_each_methods_correlation():
    out = subprocess.run([sys.executable, str(BENCH / "importance_vs_finetune.py"), "--report",
                          str(BENCH / "results" / "importance_vs_finetune_2026-12-06.csv")],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    assert "zero-shot            0.742" in out and "probe                0.791" in out and "masks" in out
    assert "rho(probe) - rho(zero-shot)" in out


def test_a_dry_run_of_the_gpu_check_leaves_an_earlier_status_alone(tmp_path):
    (tmp_path / "status.txt").write_text("install: exit 0 after 3 s\n")
    out = subprocess.run(["bash", str(BENCH / "gpu_check.sh")], env={"PATH": "/usr/bin:/bin", "OUT": str(tmp_path),
                                                                     "DRY_RUN": "1"},
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert (tmp_path / "status.txt").read_text() == "install: exit 0 after 3 s\n"
    assert out.strip().endswith("dry run: nothing was run")


@pytest.mark.parametrize("script,argv,message", [
    ("multi_device_search", ["--repeat", "0", "--out", "x.csv"], "--repeat: must be a positive integer"),  # min([])
    ("timer_drift", ["--seconds", "-1"], "--seconds: must be a positive number"),  # numpy's empty min
    ("importance_vs_finetune", ["--segments", "0"], "--segments: must be a positive integer"),  # 0 division
    ("time_on_device", ["run", "--min-time-ms", "0"], "--min-time-ms: must be a positive number"),  # ran, untimed
    ("predictor_accuracy", ["--rows", "5"], "at least 20 rows of the new device"),  # a traceback after the fits
    ("finetune_length", ["--out", "x", "--seed", "-1"], "--seed: must be an integer from 0"),
    ("lut_table", ["--out", "x.csv", "--passes", "0"], "--passes: must be a positive integer"),
])
def test_bench_options_out_of_range_are_refused_by_the_parser(script, argv, message, monkeypatch, capsys):
    """Counts and times of 0 or below crashed a bench script after its set-up, or ran it on nothing."""
    module = _script(script)
    monkeypatch.setattr(sys, "argv", [f"{script}.py", *argv])
    with pytest.raises(SystemExit) as exit_:
        module.main()
    assert exit_.value.code == 2 and message in capsys.readouterr().err
