"""Comparing against a saved baseline (issue 27): real runs saved by the command, compared with `mnist-compare
compare` and `--baseline`; the statistics against scipy and simulation; the identity and schema of results
files; the Relative column; the CI gate's flakiness warning; bad input."""

from __future__ import annotations

import json
import statistics
import subprocess
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from conftest import mnist_compare_command as mnist_compare

from mnist_compare.output import stats
from mnist_compare.records.saved import read_results

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "mnist_compare" / "schema" / "results.schema.json").read_text())
BOTH = ["--compare_nets", "--hidden_size", "32", "--number_epochs", "2", "--repeats", "5", "--quiet"]
MY_NET = ["--hidden_size", "32", "--number_epochs", "5", "--repeats", "8", "--quiet"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """A real baseline: my_net and keras_net, hidden 32, 2 epochs, seeds 1-5."""
    path = tmp_path_factory.mktemp("baseline") / "base.json"
    done = mnist_compare(*BOTH, "--seed", "1", "--output", path)
    assert done.returncode == 0, done.stderr
    return path


def copy_with(path: Path, target: Path, change) -> Path:
    """A copy of the results file at `path` with change(run) applied to every run."""
    data = json.loads(path.read_text())
    for run in data["runs"]:
        change(run)
    target.write_text(json.dumps(data))
    return target


def verdicts(stdout_json: Path) -> dict[str, tuple[str, str]]:
    rows = json.loads(stdout_json.read_text())["baseline_comparison"]["rows"]
    return {row["name"]: (row["accuracy_verdict"], row["time_verdict"]) for row in rows}


def test_results_file_carries_its_identity_and_validates_against_the_schema(saved):
    data = json.loads(saved.read_text())
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(data)
    assert data["format_version"] == 1 and data["net_file"] is None
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:  # a clone: the commit it ran from
        assert data["git_commit"] == head.stdout.strip() and isinstance(data["git_dirty"], bool)


def test_schema_rejects_a_file_missing_its_identity(saved):
    data = json.loads(saved.read_text())
    del data["format_version"]
    with pytest.raises(jsonschema.ValidationError, match="format_version"):
        jsonschema.validate(data, SCHEMA)


def test_a_users_net_file_is_recorded_with_its_sha256(tmp_path):
    import hashlib

    out = tmp_path / "student.json"
    done = mnist_compare("--net_type", "examples/student_net.py:StudentNet", "--hidden_size", "8", "--number_epochs",
                         "1", "--seed", "0", "-q", "--output", out)
    assert done.returncode == 0, done.stderr
    net_file = json.loads(out.read_text())["net_file"]
    source = ROOT / "examples" / "student_net.py"
    assert Path(net_file["path"]).resolve() == source.resolve()  # examples/student_net.py is a link
    assert net_file["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()


def test_relative_column_in_the_json_equals_the_ratio_of_mean_times(saved):
    runs = json.loads(saved.read_text())["runs"]
    mine = [r["train_time_s"] for r in runs if r["name"] == "my_net"]
    theirs = [r["train_time_s"] for r in runs if r["name"] == "keras_net"]
    keras_run = next(r for r in runs if r["name"] == "keras_net")
    assert keras_run["relative_time"] == pytest.approx(statistics.fmean(theirs) / statistics.fmean(mine))
    assert keras_run["relative_time_sigma"] > 0
    assert {r["relative_time"] for r in runs if r["name"] == "my_net"} == {1.0}


def test_a_baseline_compared_with_itself_is_same_everywhere_and_exits_0(saved, tmp_path):
    out = tmp_path / "self.json"
    done = mnist_compare("compare", saved, saved, "--margin", "1", "--max_slowdown", "200", "--output", out)
    assert done.returncode == 0, done.stderr
    assert verdicts(out) == {"my_net": ("same", "same"), "keras_net": ("same", "same")}
    assert "same (identical on every seed)" in done.stdout and "5 paired" in done.stdout
    assert "Holm's correction over 2 tests" in done.stdout and "no regression" in done.stdout  # the times'
    rows = json.loads(out.read_text())["baseline_comparison"]["rows"]
    assert all(row["paired"] and row["paired_seeds"] == 5 and row["accuracy_interval_pp"] == [0, 0] for row in rows)
    at_defaults = mnist_compare("compare", saved, saved)  # 0.2 pp: five runs may not show it, never "worse"
    assert at_defaults.returncode == 0 and "worse" not in at_defaults.stdout


def test_my_net_accuracies_lowered_by_1pp_are_worse_and_exit_8(saved, tmp_path):
    def lower(run):
        if run["name"] == "my_net":
            run["test_accuracy"] -= 0.01

    lowered = copy_with(saved, tmp_path / "lowered.json", lower)
    out = tmp_path / "cmp.json"
    done = mnist_compare("compare", saved, lowered, "--output", out)
    assert done.returncode == 8, done.stdout + done.stderr
    assert verdicts(out)["my_net"][0] == "worse" and verdicts(out)["keras_net"][0] != "worse"
    assert "regression: my_net" in done.stdout
    difference = json.loads(out.read_text())["baseline_comparison"]["rows"][0]["accuracy_difference_pp"]
    assert difference == pytest.approx(-1.0)


def steady_times(saved: Path, target: Path) -> Path:
    """A copy of the real baseline whose times spread 3 % around each net's median, as 20-epoch runs on a quiet
    machine do: these 2-second runs, timed while the suite's other processes run, spread 15-30 %, too much
    for five runs to show any 30 % slowdown (the comparison says inconclusive, as it should)."""
    data = json.loads(saved.read_text())
    for name in {run["name"] for run in data["runs"]}:
        runs = [run for run in data["runs"] if run["name"] == name]
        median = statistics.median(run["train_time_s"] for run in runs)
        for offset, run in zip((-0.04, -0.02, 0.0, 0.02, 0.04), runs, strict=True):
            run["train_time_s"] = median * (1 + offset)
    target.write_text(json.dumps(data))
    return target


def test_a_run_30_percent_slower_on_the_same_machine_exits_8(saved, tmp_path):
    def slower(run):
        run["train_time_s"] *= 1.3

    base = steady_times(saved, tmp_path / "steady.json")
    slow = copy_with(base, tmp_path / "slow.json", slower)
    out = tmp_path / "cmp.json"
    done = mnist_compare("compare", base, slow, "--max_slowdown", "10", "--output", out)
    assert done.returncode == 8, done.stdout + done.stderr
    rows = json.loads(out.read_text())["baseline_comparison"]["rows"]
    assert [row["time_verdict"] for row in rows] == ["worse", "worse"]
    assert all(row["time_ratio"] == pytest.approx(1.3) for row in rows)
    assert all(row["accuracy_verdict"] != "worse" for row in rows)
    within = mnist_compare("compare", base, slow, "--max_slowdown", "50")  # 30 % slower is within 50 %
    assert within.returncode == 0 and "worse" not in within.stdout


def test_times_from_another_machine_are_not_judged(saved, tmp_path):
    def elsewhere(run):
        run["train_time_s"] *= 3

    data = json.loads(copy_with(saved, tmp_path / "other.json", elsewhere).read_text())
    data["cpu"] = "another CPU"
    (tmp_path / "other.json").write_text(json.dumps(data))
    done = mnist_compare("compare", saved, tmp_path / "other.json")
    assert done.returncode == 0, done.stdout
    assert "not judged" in done.stdout and "not come from the same machine" in done.stdout


def test_two_seed_sets_of_a_real_net_are_same_within_the_margin(tmp_path):
    first, second, out = tmp_path / "seeds-1.json", tmp_path / "seeds-101.json", tmp_path / "cmp.json"
    for seed, path in (("1", first), ("101", second)):
        done = mnist_compare(*MY_NET, "--seed", seed, "--output", path)
        assert done.returncode == 0, done.stderr
    done = mnist_compare("compare", first, second, "--margin", "0.5", "--max_slowdown", "100", "--output", out)
    assert done.returncode == 0, done.stdout
    row = json.loads(out.read_text())["baseline_comparison"]["rows"][0]
    assert row["accuracy_verdict"] == "same" and row["accuracy_p_holm"] < 0.05
    low, high = row["accuracy_interval_pp"]
    assert -0.5 < low < row["accuracy_difference_pp"] < high < 0.5


def test_a_training_run_against_a_baseline_compares_in_every_output(saved, tmp_path):
    outputs = [tmp_path / f"new.{suffix}" for suffix in ("json", "md", "csv")]
    args = [*BOTH[:-3], "--repeats", "2", "--seed", "11", "--baseline", saved, "--margin", "2", "--max_slowdown", "300"]
    done = mnist_compare(*args, *[x for path in outputs for x in ("--output", path)], "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "against the baseline" in done.stdout and "Relative" in done.stdout
    record = json.loads(outputs[0].read_text())["baseline_comparison"]
    assert record["baseline"] == str(saved) and record["correction"] == "holm" and not record["regression"]
    assert {row["accuracy_verdict"] for row in record["rows"]} <= {"same", "inconclusive"}
    assert "Against the baseline" in outputs[1].read_text()
    assert (tmp_path / "new-baseline.csv").read_text().startswith("name,hyperparameters,runs_base")


def test_holm_adjusts_as_the_textbook_step_down():
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_turns_a_borderline_worse_into_inconclusive():
    base = [92.1, 92.3, 92.2, 92.4, 92.0, 92.25]
    shift = next(s for s in np.arange(0.2, 2, 0.005) if stats.three_way([x - s for x in base], base, 0.2).p < 0.04)
    alone = stats.three_way([x - shift for x in base], base, 0.2)
    others = [stats.three_way([x + d for x in base], base, 0.2) for d in (0.01, -0.02, 0.03)]
    assert stats.correct([alone]) == 1 and 0.01 < alone.p_holm < 0.05 and alone.claim == "worse"
    assert stats.correct([alone, *others]) == 4 and alone.p_holm > 0.05 and alone.claim == "inconclusive"


def test_tost_is_scipys_two_one_sided_welch_tests():
    from scipy import stats as scipy_stats

    rng = np.random.default_rng(3)
    base, new = list(rng.normal(97.8, 0.1, 5)), list(rng.normal(97.75, 0.1, 5))
    verdict = stats.three_way(new, base, 0.2)
    lower = scipy_stats.ttest_ind(np.array(new) + 0.2, base, equal_var=False, alternative="greater").pvalue
    upper = scipy_stats.ttest_ind(np.array(new) - 0.2, base, equal_var=False, alternative="less").pvalue
    assert verdict.region == "same" and verdict.p == pytest.approx(max(lower, upper))


def test_gate_failure_rate_matches_simulation():
    rng = np.random.default_rng(0)
    measured = list(rng.normal(97.6, 0.1, 3))
    gate = statistics.fmean(measured) - 0.05
    predicted = stats.gate_failure_rate(measured, gate)
    # Simulate: the true mean and spread unknown, drawn as the t predictive implies (a flat prior), then a new mean
    n, mean, s = 3, statistics.fmean(measured), statistics.stdev(measured)
    sigma = s * np.sqrt((n - 1) / rng.chisquare(n - 1, 200_000))
    mu = rng.normal(mean, sigma / np.sqrt(n))
    new_means = rng.normal(mu, sigma / np.sqrt(n))
    assert predicted == pytest.approx(np.mean(new_means < gate), abs=0.01)
    assert stats.gate_failure_rate(measured, stats.safe_gate(measured)) == pytest.approx(0.05)


def test_a_flaky_gate_is_warned_about_with_the_gate_that_would_hold(tmp_path):
    first = tmp_path / "first.json"
    done = mnist_compare(*MY_NET[:-3], "--repeats", "3", "--seed", "1", "--output", first)
    accuracies = [100 * r["test_accuracy"] for r in json.loads(first.read_text())["runs"]]
    mean, spread = statistics.fmean(accuracies), statistics.stdev(accuracies)
    near = mnist_compare(*MY_NET[:-3], "--repeats", "3", "--seed", "1", "--min_test_accuracy",
                         f"{mean - 0.3 * spread:.4f}")
    assert near.returncode == 0, near.stderr  # same seeds, same bits: the mean is above the gate
    assert "fails a net like my_net" in near.stderr and "of the time; lower it to" in near.stderr
    far = mnist_compare(*MY_NET[:-3], "--repeats", "3", "--seed", "1", "--min_test_accuracy",
                        f"{mean - 20 * spread:.4f}")
    assert far.returncode == 0 and "fails a net like" not in far.stderr
    above = mnist_compare(*MY_NET[:-3], "--repeats", "3", "--seed", "1", "--min_test_accuracy", f"{mean + 0.01:.4f}")
    assert above.returncode == 1 and "mean test accuracy over 3 runs" in above.stderr
    assert done.returncode == 0


@pytest.mark.parametrize("content, code, words", [
    ('{"runs": [', 4, "truncated"),
    ('{"hello": 1}', 4, "not an mnist-compare results file"),
    ('{"checks": []}', 2, "--check results"),
    ('{"format_version": 99, "runs": []}', 2, "format_version 99"),
    ('{"runs": [{"name": "my_net"}]}', 4, "run 1 lacks hyperparameters"),
])
def test_a_file_that_cannot_be_compared_is_one_line_and_its_exit_code(saved, tmp_path, content, code, words):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    for args in (("compare", saved, bad), ("compare", bad, saved), ("--baseline", bad, "--number_epochs", "1")):
        done = mnist_compare(*args)
        assert done.returncode == code, done.stderr
        assert words in done.stderr and len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_files_with_no_setting_in_common_are_a_usage_error_before_training(saved, tmp_path):
    other = copy_with(saved, tmp_path / "other.json", lambda run: run["hyperparameters"].update(hidden_size=64))
    done = mnist_compare("compare", saved, other)
    assert done.returncode == 2 and "no net and setting in common" in done.stderr
    started = mnist_compare("--baseline", saved, "--hidden_size", "64", "--number_epochs", "1")
    assert started.returncode == 2 and "has no finished run of a net and setting" in started.stderr
    assert started.stdout == ""  # refused before training: no table


def test_an_old_results_file_without_a_format_version_is_read_as_version_0(tmp_path):
    reference = ROOT / "results" / "reference.json"
    assert "format_version" not in json.loads(reference.read_text())
    assert read_results(reference).version == 0
    out = tmp_path / "cmp.json"
    done = mnist_compare("compare", reference, reference, "--output", out)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(out.read_text())["baseline_comparison"]["rows"]) == 16


def test_margin_without_a_baseline_is_refused():
    done = mnist_compare("--margin", "0.5", "--number_epochs", "1")
    assert done.returncode == 2 and "--margin has no effect without --baseline" in done.stderr


# -- paired by seed ---------------------------------------------------------------------------------------------

def test_the_same_command_run_twice_is_same_for_every_net_at_the_default_margins(saved, tmp_path):
    again = tmp_path / "again.json"
    assert mnist_compare(*BOTH, "--seed", "1", "--output", again).returncode == 0
    out = tmp_path / "cmp.json"
    done = mnist_compare("compare", saved, again, "--output", out)
    assert done.returncode == 0, done.stdout + done.stderr
    assert {name: accuracy for name, (accuracy, _) in verdicts(out).items()} == {"my_net": "same",
                                                                                "keras_net": "same"}


def test_a_constant_half_point_drop_on_every_seed_is_worse_and_exit_8(saved, tmp_path):
    def drop(run):
        if run["name"] == "my_net":
            run["test_accuracy"] -= 0.005

    out = tmp_path / "cmp.json"
    done = mnist_compare("compare", saved, copy_with(saved, tmp_path / "drop.json", drop), "--output", out)
    assert done.returncode == 8, done.stdout + done.stderr
    row = json.loads(out.read_text())["baseline_comparison"]["rows"][0]
    assert row["name"] == "my_net" and row["accuracy_verdict"] == "worse" and row["paired_seeds"] == 5
    assert row["accuracy_difference_pp"] == pytest.approx(-0.5) and row["accuracy_interval_pp"] == [-0.5, -0.5]


def test_noise_around_zero_on_every_seed_is_same_where_unpaired_it_is_inconclusive(saved, tmp_path):
    """±0.05 pp of noise per seed: paired, the differences' spread is tiny and TOST shows "same" at 0.2 pp;
    the same values judged as two independent samples carry the seed-to-seed spread and cannot."""
    noise = iter(np.random.default_rng(4).normal(0, 0.0005, 100))

    def jitter(run):
        run["test_accuracy"] += next(noise)

    jittered = copy_with(saved, tmp_path / "noise.json", jitter)
    out = tmp_path / "cmp.json"
    assert mnist_compare("compare", saved, jittered, "--output", out).returncode == 0
    rows = json.loads(out.read_text())["baseline_comparison"]["rows"]
    assert [row["accuracy_verdict"] for row in rows] == ["same", "same"]
    data = json.loads(jittered.read_text())
    for run in data["runs"]:
        run["seed"] += 100  # other seeds: no pairs
    (tmp_path / "unpaired.json").write_text(json.dumps(data))
    assert mnist_compare("compare", saved, tmp_path / "unpaired.json", "--output", out).returncode == 0
    rows = json.loads(out.read_text())["baseline_comparison"]["rows"]
    assert not any(row["paired"] for row in rows) and "same" not in [row["accuracy_verdict"] for row in rows]


def test_the_paired_interval_and_test_match_a_textbook_example():
    """Student's sleep data (Cushny and Peebles, 1905; R's `sleep`), the classic paired t-test: mean difference
    1.58 h, t = 4.062 with 9 degrees of freedom, 95% interval [0.700, 2.460] (R: t.test(extra ~ group,
    paired = TRUE))."""
    drug_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
    drug_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]
    differences = stats.paired_differences(drug_2, drug_1)
    low, high = stats.mean_interval(differences)
    assert (low, high) == pytest.approx((0.700, 2.460), abs=5e-4)
    verdict = stats.paired_three_way(differences, 0.5)  # beyond +0.5: t = (1.58 - 0.5) / (1.230 / sqrt 10) = 2.777
    assert verdict.region == "better" and verdict.p == pytest.approx(0.01076, abs=5e-5)  # one-sided, 9 df
