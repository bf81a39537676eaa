"""The demo as a hostile user runs it: bad sizes, dry runs, two runs at once, interrupts."""

import json
import os
import subprocess
import sys

import pytest

from qubo_prune.apps import demo
from qubo_prune.apps.cli import main
from qubo_prune.apps.lock import LOCK

TINY = ["--hidden", "16", "--train-subset", "2000", "--block-size", "24", "--epochs", "2",
        "--steps-per-epoch", "2", "--samples-per-step", "256", "--no-progress"]  # fmt: skip


def no_data(monkeypatch):
    """Fail the test if the demo reaches its data."""

    def refuse(*args, **kwargs):
        raise AssertionError("the data were loaded before the bad input was refused")

    monkeypatch.setattr(demo, "load_fashion_mnist", refuse)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--block-size", "100000000", "--hidden", "512"], "GiB .each holds 401408 x 401408"),
        (["--hidden", "0"], "--hidden must be at least 1"),
        (["--train-subset", "-5"], "--train-subset must be 0 .all. or positive"),
        (["--solver-opt", "num_reads=abc"], "num_reads='abc' .a str. of solver 'neal'"),
        (["--epochs", "0"], "epochs must be >= 1"),
    ],
)
def test_bad_sizes_are_refused_before_the_data_load(argv, message, monkeypatch, capsys, tmp_path):
    no_data(monkeypatch)
    assert main(["demo", *TINY, *argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and len(err.strip().splitlines()) == 1
    import re

    assert re.search(message, err), err


def test_a_dry_run_does_not_poison_the_real_run(tmp_path, capsys):
    out = str(tmp_path / "dr")
    args = ["demo", *TINY, "--densities", "0.1", "--out", out]
    assert main([*args, "--dry-run"]) == 0
    assert not (tmp_path / "dr").exists()
    assert main(args) == 0
    row = json.loads((tmp_path / "dr" / "demo.json").read_text())["rows"][0]
    assert row["accepted_steps"] > 0


def test_a_second_run_on_the_same_out_is_refused(tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / LOCK).write_text(str(owner.pid))
        assert main(["demo", *TINY, "--densities", "0.1", "--out", str(out)]) == 2
        assert f"in use by another run (pid {owner.pid})" in capsys.readouterr().err
    finally:
        owner.kill()
        owner.wait()
    assert main(["demo", *TINY, "--densities", "0.1", "--out", str(out)]) == 0  # stale: taken
    assert not (out / LOCK).exists()


def test_an_interrupt_keeps_finished_densities_and_resumes(tmp_path, capsys, monkeypatch):
    out = tmp_path / "demo"
    args = ["demo", *TINY, "--densities", "0.2,0.3", "--out", str(out)]
    real_prune = demo.ICBSPruner.prune

    def interrupt_at_0_3(self, *a, **kw):
        if self.config.density == 0.3:
            raise KeyboardInterrupt
        return real_prune(self, *a, **kw)

    monkeypatch.setattr(demo.ICBSPruner, "prune", interrupt_at_0_3)
    assert main(args) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "run the same command again to resume" in err
    assert (out / "densities" / "d0.2.json").exists()
    monkeypatch.setattr(demo.ICBSPruner, "prune", real_prune)
    assert main(args) == 0
    assert "density 0.2: kept from" in capsys.readouterr().out
    rows = json.loads((out / "demo.json").read_text())["rows"]
    assert [r["density"] for r in rows] == [0.2, 0.3]


def test_sigint_exits_130_with_one_line_saying_how_to_resume(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    code = (
        "import signal, os, sys, time\n"
        "from qubo_prune.apps import demo\n"
        "def hit(*a, **k):\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    while True:  # the signal arrives asynchronously; wait for it here\n"
        "        time.sleep(0.01)\n"
        "demo.ICBSPruner.prune = hit\n"
        "from qubo_prune.apps.cli import main\n"
        f"sys.exit(main(['demo', *{TINY!r}, '--densities', '0.1', '--out', {str(tmp_path)!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 130
    assert done.stderr.strip().splitlines()[-1].endswith("run the same command again to resume")
