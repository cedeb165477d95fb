"""The calibration of --check's bounds: false FAILs on correct nets over a grid, and the margin by which every
one-bug mutant fails. Writes results/calibration.md.

    python -m bench.calibrate                 # the full grid (about 35 minutes on 2 cores)
    python -m bench.calibrate --seeds 2       # a quick look

Correct nets: my_net, examples/student_net.py (plain SGD) and bench/calibration_nets.py's four variants, over
sgd / momentum / adam x lr 0.1, 0.001 x hidden 32, 64 x batch 128, 100: my_net with --seeds seeds (20) at every
Adam cell (the ill-conditioned optimiser) and --plain_seeds (3) at the others, the other nets one seed a cell of
hidden 32.
A check's share of its bound is its largest distance from exact over the bound (tolerances.py): a correct net
must stay <= 1; a mutant's margin is its share, so >= 3 means the smallest real bug is 3 times past the bound.
Mutants: grade/audit.py's (the tests' too) and a 0.5 % learning-rate slip at the default setting (hidden 32,
lr 0.1, batch 128, sgd) for --mutant_seeds seeds, and the slip and a textbook Adam over the cells of hidden 32.
Checks run here in this process (run_checks), two at a time; the sandbox around a submission changes
transport, not arithmetic.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "student_net.py"
CELLS = list(itertools.product(("sgd", "momentum", "adam"), (0.1, 0.001), (32, 64), (128, 100)))
LR_SLIP = ("self.lr = np.float32(lr)", "self.lr = np.float32(lr * 1.005)")
SPREAD_OUT = ("SlippedLearningRate", "TextbookAdam")  # bugs run over the grid's cells, one row per optimiser
_data = None


def mutations() -> dict[str, tuple[str, str]]:
    """The one-bug mutants of the example (grade/audit.py, which tests/mutants.py and `grade --audit` use),
    and the 0.5 % learning-rate slip."""
    from mnist_compare.grade.audit import MUTATIONS

    return {**{name: pair for name, (pair, _) in MUTATIONS.items()}, "learning rate 0.5% too large": LR_SLIP}


def net_class(name: str, directory: str) -> type:
    """A correct net by name (my_net, student, a variant) or a mutant of the example written to `directory`."""
    from bench import calibration_nets
    from mnist_compare.nets.my_net import NeuralNetwork
    from mnist_compare.nets.user_net import load_class

    if name == "my_net":
        return NeuralNetwork
    if name == "student":
        return load_class(f"{EXAMPLE}:StudentNet")
    if hasattr(calibration_nets, name):
        return getattr(calibration_nets, name)
    original, buggy = mutations()[name]
    path = Path(directory) / f"mutant_{abs(hash(name))}.py"
    path.write_text(EXAMPLE.read_text().replace(original, buggy))
    return load_class(f"{path}:StudentNet")


def run_one(job: tuple) -> dict:
    """One --check of `job` = (net, optimizer, lr, hidden, batch, seed): which checks failed, the largest share
    of a bound among the numeric checks (and among the failed ones), and the seconds it took."""
    global _data
    from mnist_compare.check.checks import run_checks
    from mnist_compare.data import idx
    from mnist_compare.nets.keras_net import KerasNet
    from mnist_compare.records.spec import OptimizerSettings, RunSpec

    if _data is None:
        _data = idx.load_data()
    name, optimizer, lr, hidden, batch, seed = job
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as directory:
        spec = RunSpec(net_class(name, directory), hidden, lr, batch, seed=seed,
                       optimizer=OptimizerSettings(optimizer))
        checks = run_checks(spec, _data, KerasNet)
    shares = {c.name: c.details["share_of_bound"] for c in checks if "share_of_bound" in c.details}
    failed = [c.name for c in checks if not c.passed]
    return {"job": job, "failed": failed, "share": max(shares.values(), default=0.0),
            "seconds": time.perf_counter() - start,
            "failed_share": max((shares[n] for n in failed if n in shares), default=None),
            "diagnoses": {c.name: c.diagnosis for c in checks if not c.passed}}


def grid(seeds: int, plain_seeds: int, other_seeds: int, mutant_seeds: int,
         cells: list[tuple]) -> tuple[list[tuple], list[tuple]]:
    """(correct nets' jobs, mutants' jobs)."""
    from bench.calibration_nets import VARIANTS

    correct = [("my_net", *cell, seed) for cell in cells
               for seed in range(seeds if cell[0] == "adam" else min(seeds, plain_seeds))]
    correct += [("student", "sgd", lr, h, b, seed) for name, lr, h, b in cells if name == "sgd"
                for seed in range(other_seeds)]
    # the other nets at every optimiser and lr, hidden 32: their arithmetic differs from my_net's, not their size
    correct += [(v.__name__, *cell, seed) for v in VARIANTS for cell in cells if cell[2] == 32
                for seed in range(other_seeds)]
    mutants = [(name, "sgd", 0.1, 32, 128, seed) for name in mutations() for seed in range(mutant_seeds)]
    mutants += [("SlippedLearningRate", *cell, 0) for cell in cells if cell[2] == 32]
    mutants += [("TextbookAdam", *cell, 0) for cell in cells if cell[0] == "adam" and cell[2] == 32]
    return correct, mutants


def correct_table(results: list[dict]) -> list[str]:
    rows = ["| net | optimizer | runs | false FAILs | largest share of a bound (median) |", "|---|---|---|---|---|"]
    keys = sorted({(r["job"][0], r["job"][1]) for r in results}, key=lambda k: (k[0] != "my_net", k))
    for net, optimizer in keys:
        runs = [r for r in results if r["job"][:2] == (net, optimizer)]
        shares = [r["share"] for r in runs]
        rows.append(f"| {net} | {optimizer} | {len(runs)} | {sum(bool(r['failed']) for r in runs)} | "
                    f"{max(shares):.2f} ({statistics.median(shares):.2f}) |")
    return rows


def mutant_table(results: list[dict]) -> list[str]:
    rows = ["| mutant | runs | FAILed in every run | checks failed | smallest margin (share of the bound) |",
            "|---|---|---|---|---|"]
    for key in dict.fromkeys((r["job"][0], r["job"][1] if r["job"][0] in SPREAD_OUT else "") for r in results):
        runs = [r for r in results if (r["job"][0], r["job"][1] if r["job"][0] in SPREAD_OUT else "") == key]
        name = f"{key[0]} ({key[1]}, every cell)" if key[1] else key[0]
        margins = [r["failed_share"] for r in runs if r["failed_share"] is not None]
        margin = f"{min(margins):.3g}" if len(margins) == len(runs) else "not numeric (a boolean check)"
        checks = sorted({c for r in runs for c in r["failed"]})
        rows.append(f"| {name} | {len(runs)} | {'yes' if all(r['failed'] for r in runs) else 'NO'} | "
                    f"{', '.join(checks)} | {margin} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20, help="seeds per Adam cell for my_net")
    parser.add_argument("--plain_seeds", type=int, default=3, help="seeds per SGD and momentum cell for my_net")
    parser.add_argument("--other_seeds", type=int, default=1, help="seeds per cell for the other correct nets")
    parser.add_argument("--mutant_seeds", type=int, default=2)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--optimizers", default="sgd,momentum,adam", help="the grid's optimizers (a comma list)")
    parser.add_argument("--output", default=str(ROOT / "results" / "calibration.md"))
    args = parser.parse_args()
    cells = [cell for cell in CELLS if cell[0] in args.optimizers.split(",")]
    correct, mutants = grid(args.seeds, args.plain_seeds, args.other_seeds, args.mutant_seeds, cells)
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
        results = []
        for done, result in enumerate(pool.imap_unordered(run_one, correct + mutants), 1):
            results.append(result)
            if result["failed"] and result["job"] in correct:
                print(f"FALSE FAIL {result['job']}: {result['diagnoses']}", flush=True)
            if done % 20 == 0:
                print(f"{done} of {len(correct) + len(mutants)} in {time.perf_counter() - start:.0f} s", flush=True)
    good = [r for r in results if r["job"] in correct]
    bad = [r for r in results if r["job"] in mutants]
    write(args.output, good, bad, time.perf_counter() - start)


def write(path: str, good: list[dict], bad: list[dict], seconds: float) -> None:
    from mnist_compare.check.tolerances import FORWARD_FLOOR, SPREAD_FACTOR, STEP_FLOOR, TRAJECTORY_FLOOR

    false_fails = sum(bool(r["failed"]) for r in good)
    margins = [r["failed_share"] for r in bad if r["failed_share"] is not None]
    text = "\n".join([
        "# Calibration of --check's bounds", "",
        "`python -m bench.calibrate` (bench/calibrate.py): every numeric check passes when the net's distance from "
        f"the exact float64 reference is within {SPREAD_FACTOR:g} x float32's own distance (the largest over "
        "the Keras twin and the exact formulas in float32 on five other row orders, over every "
        f"parameter) + a floor (steps {STEP_FLOOR:g} relative, forward {FORWARD_FLOOR:g}, trajectory "
        f"{TRAJECTORY_FLOOR:g} absolute). The exact run breaks ReLU's ties (pre-activations within float32's "
        "reach of 0) as the net did; the trajectory's samples are the float32 formulas and the exact run with "
        f"every step {STEP_FLOOR:g} larger, no twin. Grid: sgd / momentum / adam x lr 0.1, 0.001 x hidden 32, 64 "
        f"x batch 128, 100. {len(good) + len(bad)} checks in {seconds / 60:.0f} min.", "",
        f"**Correct nets: {false_fails} false FAILs in {len(good)} runs.** The share is a run's largest distance "
        "over its bound, over every numeric check (<= 1 passes).", "", *correct_table(good), "",
        f"**One-bug mutants**: of examples/student_net.py (tests/mutants.py, hidden 32, lr 0.1, batch 128, sgd), "
        "and over the grid's cells of hidden 32 bench/calibration_nets.py's SlippedLearningRate (TransposedNet "
        "with the learning rate 0.5 % too large) and TextbookAdam (m_hat / (sqrt(v_hat) + eps), not Keras' form). The "
        f"smallest margin of a numeric FAIL is {min(margins):.3g} times its bound.", "", *mutant_table(bad), ""])
    Path(path).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
