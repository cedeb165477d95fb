"""The command's structure: a plan returned, not stashed; modes that are plain functions a test calls without
Click; each list of names (checks, Keras backends, results formats) written once and every list derived from
it; a command group whose default trains, with `compare` listed, documented and completed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli
from test_cluster import scheduler  # noqa: F401  (the module's real Dask cluster on loopback)

from mnist_compare.check.checks import CHECK_NAMES, CHECKS, DEFAULT_WEIGHTS
from mnist_compare.cli import main
from mnist_compare.cli.main import baseline_file
from mnist_compare.cli.modes import MODES
from mnist_compare.cli.plan import Options, Plan, make_plan
from mnist_compare.nets.keras_backends import BACKEND_NAMES, BACKENDS, backend_problem
from mnist_compare.output import files, gradescope
from mnist_compare.records.check import Status
from mnist_compare.system.shutdown import SignalGuard

ROOT = Path(__file__).resolve().parents[1]


def options_of(*args: str) -> Options:
    """The Options of a command line, parsed by the real command; nothing after this touches Click."""
    with main.main.make_context("mnist-compare", list(args)) as ctx:
        return Options(**ctx.params)


def test_the_plan_holds_the_drawn_seed_the_runs_and_the_load_before():
    options = options_of("--compare_nets", "--hidden_size", "8,16", "--repeats", "2", "--number_epochs", "1")
    plan = make_plan(options, baseline_file)
    assert isinstance(plan, Plan) and 0 <= plan.seed < 2**31
    assert [(s.net_name, s.hidden_size, s.seed - plan.seed) for s in plan.specs][:4] == [
        ("my_net", 8, 0), ("keras_net", 8, 0), ("keras_net", 8, 1), ("my_net", 8, 1)]  # odd repeats reversed
    assert len(plan.specs) == 8 and plan.load_before is not None and plan.baseline is None


def test_the_here_mode_is_a_plain_function_that_returns_its_results_and_profiles():
    options = options_of("--hidden_size", "8", "--number_epochs", "1", "--seed", "3", "--profile", "--quiet")
    made = MODES["here"](make_plan(options, baseline_file), options, SignalGuard())
    (result,) = made.results
    assert result.finished and result.seed == 3 and result.test_accuracy > 0.5
    assert [p["net"] for p in made.profiles] == ["my_net"] and made.profiles[0]["functions"]


def test_the_check_mode_is_a_plain_function_that_returns_its_checks():
    options = options_of("--check", "--hidden_size", "16", "--seed", "1")
    made = MODES["check"](make_plan(options, baseline_file), options, SignalGuard())
    assert [c.name for c in made.checks] == list(CHECK_NAMES)
    assert all(c.status is Status.PASS for c in made.checks), [c.to_dict() for c in made.checks]


def test_the_cluster_mode_is_a_plain_function_that_returns_the_jobs_results(scheduler):  # noqa: F811
    options = options_of("--hidden_size", "8", "--number_epochs", "1", "--seed", "5", "--scheduler", scheduler,
                         "--quiet")
    made = MODES["cluster"](make_plan(options, baseline_file), options, SignalGuard())
    (result,) = made.results
    assert result.finished and result.seed == 5 and result.net_info.get("host")


def test_each_mode_of_options_has_its_function():
    modes = {options_of(*args).mode for args in ([], ["--check"], ["--scheduler", "tcp://127.0.0.1:9"])}
    assert modes == set(MODES)


def test_no_module_reads_or_writes_clicks_context_but_the_commands_entry():
    package = ROOT / "mnist_compare"
    readers = sorted(str(path.relative_to(package)) for path in package.rglob("*.py")
                     if "get_current_context" in path.read_text() or "ctx.meta" in path.read_text()
                     or "pass_context" in path.read_text())
    assert readers == ["cli/main.py"]
    assert "ctx.meta" not in (package / "cli" / "main.py").read_text()


def test_the_check_names_of_the_table_are_the_tables_rows_gradescopes_tests_and_the_weights_keys(tmp_path):
    assert tuple(entry.name for entry in CHECKS) == CHECK_NAMES and len(set(CHECK_NAMES)) == len(CHECK_NAMES)
    assert list(DEFAULT_WEIGHTS) == list(CHECK_NAMES)
    assert list(gradescope.parse_weights("forward=2", DEFAULT_WEIGHTS)) == list(CHECK_NAMES)
    with pytest.raises(gradescope.WeightsError, match=", ".join(CHECK_NAMES)):
        gradescope.parse_weights("no_such_check=1", DEFAULT_WEIGHTS)
    out = tmp_path / "checks.json"
    grades = tmp_path / "grades.json"
    result = run_cli("--check", "--hidden_size", "16", "--seed", "2", "--output", str(out), "--gradescope",
                     str(grades))
    assert result.exit_code == 0, result.stdout
    assert [c["name"] for c in json.loads(out.read_text())["checks"]] == list(CHECK_NAMES)
    assert [t["name"] for t in json.loads(grades.read_text())["tests"]] == list(CHECK_NAMES)
    rows = [line.split("|")[1].strip() for line in result.stdout.splitlines()[2:] if line.startswith("|")]
    assert rows == list(CHECK_NAMES)


def test_the_backend_names_are_the_tables_everywhere():
    assert BACKEND_NAMES == tuple(BACKENDS) == ("tensorflow", "jax", "torch")
    help_text = " ".join(run_cli("--help").stdout.split())
    assert f"Backends to train the twin on: {', '.join(BACKEND_NAMES)};" in help_text
    refused = run_cli("--compare_nets", "--keras_backend", "theano")
    assert refused.exit_code == 2 and f"use one of {', '.join(BACKEND_NAMES)}" in refused.stderr
    assert f"use one of {', '.join(BACKEND_NAMES)}" in backend_problem("theano")


def test_the_results_suffixes_are_the_writers_for_training_check_and_compare(tmp_path):
    assert files.OUTPUT_SUFFIXES == tuple(files.WRITERS) == (".md", ".csv", ".json")
    refused = run_cli("--output", str(tmp_path / "r.xlsx"))
    assert refused.exit_code == 2 and ", ".join(files.OUTPUT_SUFFIXES) in refused.stderr
    refused = run_cli("compare", "a.json", "b.json", "--output", str(tmp_path / "r.xlsx"))
    assert refused.exit_code == 2


def test_help_lists_the_commands_and_compare_has_its_own_help():
    text = run_cli("--help").stdout
    assert text.startswith("Usage: ") and "[COMMAND [ARGS]...]" in text.splitlines()[0]
    commands = text[text.index("Commands:"):]
    assert "compare" in commands and "Two saved results files compared" in commands
    compare = run_cli("compare", "--help")
    assert compare.exit_code == 0 and "BASE.json NEW.json" in compare.stdout and "--margin" in compare.stdout


def test_options_before_a_command_are_refused_naming_the_option():
    result = run_cli("--hidden_size", "3", "compare", "a.json", "b.json")
    assert result.exit_code == 2 and "--hidden_size came before it" in result.stderr


def completions(*words: str) -> list[str]:
    """What Click's bash completion offers for the command line `words` (the last one being typed)."""
    env = {**os.environ, "_MNIST_COMPARE_COMPLETE": "bash_complete", "COMP_WORDS": " ".join(words),
           "COMP_CWORD": str(len(words) - 1)}
    out = subprocess.run([sys.executable, "-m", "mnist_compare"], env=env, capture_output=True, text=True, timeout=120,
                         cwd=ROOT)
    return [line.split(",", 1)[1] for line in out.stdout.splitlines() if "," in line]


def test_shell_completion_offers_compare_and_its_options():
    assert "compare" in completions("mnist-compare", "comp")
    assert "--margin" in completions("mnist-compare", "compare", "--mar")
    assert "--hidden_size" in completions("mnist-compare", "--hidden_s")


def test_the_seed_command_still_parses_as_the_default_command():
    seed_command = "--net_type my --hidden_size 256 --lr 0.1 --batch_size 128 --number_epochs 20 --compare_nets"
    options = options_of(*seed_command.split(" "))
    assert options.mode == "here" and options.hidden_size == [256] and options.compare_nets
    assert options.net_type.text == "my" and options.recorded(7)["net_type"] == "my"
