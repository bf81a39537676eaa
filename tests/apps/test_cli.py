"""The command line: solvers, demo on a tiny setting, compare on recorded blocks, bad input."""

import json
import subprocess
import sys

import pytest
import torch
from torch.nn import functional as F

from qubo_prune.apps.cli import main
from qubo_prune.core.block import save_blocks
from qubo_prune.pruners.icbs import ICBSPruner
from tests.helpers import tiny_data, tiny_mlp


def test_solvers_lists_every_backend(capsys):
    assert main(["solvers"]) == 0
    out = capsys.readouterr().out
    for name in ("exact", "neal", "tabu", "steepest-descent"):
        assert name in out
    assert "ready" in out and "verified" not in out.replace("not verified", "")


def test_console_script_runs():
    out = subprocess.run(
        [sys.executable, "-m", "qubo_prune.apps.cli", "solvers"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "neal" in out.stdout


@pytest.mark.slow
def test_demo_on_tiny_setting(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(
        [
            "demo",
            "--hidden",
            "16",
            "--train-subset",
            "2000",
            "--densities",
            "0.2,0.3",
            "--block-size",
            "24",
            "--epochs",
            "2",
            "--steps-per-epoch",
            "2",
            "--samples-per-step",
            "256",
            "--out",
            str(out),
            "--no-progress",
            "--solver-opt",
            "num_reads=2",
            "--solver-opt",
            "num_sweeps=50",
            "--record-blocks",
            str(tmp_path / "blocks.npz"),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "magnitude" in text and "iCBS" in text
    report = json.loads((out / "demo.json").read_text())
    assert [r["density"] for r in report["rows"]] == [0.2, 0.3]
    for row in report["rows"]:
        for tensor_density in row["tensor_density"].values():
            assert abs(tensor_density - row["density"]) < 1e-3
        assert 0 <= row["icbs"] <= 100 and len(row["icbs_epochs"]) == 2
    assert (out / "demo.png").stat().st_size > 0
    assert (tmp_path / "blocks.npz").exists()


def recorded_blocks(path, n=10, count=3, solver="exact"):
    X, y = tiny_data()
    res = ICBSPruner(
        0.4,
        solver,
        block_size=n,
        epochs=count,
        steps_per_epoch=1,
        progress=False,
        record_blocks=True,
    ).prune(tiny_mlp(), F.cross_entropy, X, y)
    save_blocks(res.blocks, path)
    return path


def test_compare_on_recorded_blocks(tmp_path, capsys):
    blocks = recorded_blocks(tmp_path / "blocks.npz")
    out = tmp_path / "cmp"
    code = main(
        [
            "compare",
            "--blocks",
            str(blocks),
            "--solvers",
            "exact,neal,tabu,steepest-descent",
            "--solver-opt",
            "neal:num_reads=20",
            "--solver-opt",
            "tabu:timeout=20",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads((out / "compare.json").read_text())
    summary = {s["solver"]: s for s in report["summary"]}
    assert summary["exact"]["at_best"] == 3 and summary["exact"]["mean_gap"] == 0
    for s in summary.values():
        assert s["solved"] == 3
    rows = [r for r in report["rows"] if r["solver"] == "exact"]
    assert all(r["reference"] == "exact optimum" for r in rows)
    # one row per (block, solver, budget): exact has no work knob, the others run at 3 budgets
    assert (out / "compare.csv").read_text().count("\n") == 1 + 3 * (1 + 3 * 3)
    assert sum(r["budget"] == 1.0 for r in report["rows"]) == 12
    assert (out / "compare.png").exists()
    assert "mean gap" in capsys.readouterr().out


def test_compare_marks_blocks_too_large(tmp_path):
    blocks = recorded_blocks(tmp_path / "blocks.npz", n=30, count=1, solver="steepest-descent")
    assert (
        main(
            [
                "compare",
                "--blocks",
                str(blocks),
                "--solvers",
                "exact,steepest-descent",
                "--out",
                str(tmp_path / "c"),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "c" / "compare.json").read_text())
    exact = [r for r in report["rows"] if r["solver"] == "exact"]
    assert exact[0]["status"] == "too large"


@pytest.mark.parametrize(
    "argv,message",
    [
        (["demo", "--densities", "1.2"], "strictly between 0 and 1"),
        (["demo", "--solver", "nael"], "Did you mean 'neal'"),
        (["demo", "--solver", "exact"], "too large"),
        (["demo", "--solver-opt", "num_raeds=3"], "num_reads"),
        (["compare", "--solvers", "exact,tabo"], "Did you mean 'tabu'"),
        (["compare", "--blocks", "/nonexistent/blocks.npz"], "no recorded blocks"),
        (["compare", "--record-count", "0"], "--record-count must be at least 1"),
        (["compare", "--solvers", "tabu", "--solver-opt", "tabu:timeout=abc"], "must be int"),
        (["prune-llm", "--device", "gpu0"], "unknown device 'gpu0'"),
        (["prune-llm", "--refit-damping", "0.1"], "needs --refit"),
        (["prune-llm", "--refit", "--refit-damping", "strong"], "'auto' or a number >= 0"),
        (
            ["prune-vision", "--objective", "loss", "--fit-inputs", "both"],
            "the loss objective fits no layer",
        ),
        (
            ["prune-vision", "--refit", "--refit-damping", "auto", "--calib-images", "200"],
            "holds out 8 of the 2 calibration windows",
        ),
        pytest.param(
            ["prune-llm", "--device", "cuda"],
            "torch sees no CUDA device",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is here"),
        ),
    ],
)
def test_bad_input_gets_clear_error_before_work(argv, message, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert not (tmp_path / "o").exists()


def test_compare_refuses_a_text_file_as_blocks(tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("these are not blocks\n")
    assert main(["compare", "--blocks", str(text), "--out", str(tmp_path / "o")]) == 2
    assert "is not a blocks file" in capsys.readouterr().err


def test_compare_dry_run_prices_a_billed_device_and_sends_nothing(tmp_path, capsys):
    blocks = recorded_blocks(tmp_path / "blocks.npz", n=8, count=2)
    arn = "arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1"
    argv = ["compare", "--blocks", str(blocks), "--solvers", "braket", "--out", str(tmp_path / "o")]
    argv += ["--solver-opt", f"braket:device_arn={arn}"]
    assert main(argv) == 2  # billed without --max-cost: refused before anything is built
    assert "this solver is billed" in capsys.readouterr().err
    assert main([*argv, "--dry-run"]) == 0
    assert "dry run: 1 runs x 2 blocks, estimated $" in capsys.readouterr().out
    assert not (tmp_path / "o").exists()


def test_compare_takes_labelled_variants_of_one_solver(tmp_path):
    blocks = recorded_blocks(tmp_path / "blocks.npz", n=12, count=2)
    out = tmp_path / "cmp"
    assert (
        main(
            [
                "compare",
                "--blocks",
                str(blocks),
                "--solvers",
                "exact,sd=steepest-descent,sd-low=steepest-descent",
                "--solver-opt",
                "sd-low:penalty_scale=0.01",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    summary = {s["solver"]: s for s in json.loads((out / "compare.json").read_text())["summary"]}
    assert set(summary) == {"exact", "sd", "sd-low"}


def test_compare_reports_success_per_read_and_tts99(tmp_path, monkeypatch):
    import math

    from qubo_prune.backends import registry
    from tests.backends.bad_backend_plugin import misbehaving_specs

    monkeypatch.setattr(registry, "_plugin_specs", misbehaving_specs)
    blocks = recorded_blocks(tmp_path / "blocks.npz", n=8, count=2)
    out = tmp_path / "cmp"
    argv = [
        "compare",
        "--blocks",
        str(blocks),
        "--solvers",
        "exact,three-in-ten",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    rows = json.loads((out / "compare.json").read_text())["rows"]
    for r in (r for r in rows if r["solver"] == "three-in-ten"):
        assert r["reads"] == 10 and r["p_success"] == pytest.approx(0.3)
        expected = r["seconds_per_read"] * math.log(0.01) / math.log(0.7)
        assert r["tts99"] == pytest.approx(expected)
    assert (out / "compare.png").exists()
