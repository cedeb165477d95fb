"""Grading the grader: the built-in one-bug networks, each examples/student_net.py (this package's
student_net.py) with one classic bug, graded like any submission so that a teacher sees what each bug scores
under a rubric (`mnist-compare grade --audit --check_weights FILE`), and which bug a rubric lets through.

MUTATIONS maps each bug to (the example's line, the buggy line) and the checks it must fail with a piece of
their diagnosis; tests/test_check.py proves each, bench/calibrate.py measures each one's margin.

Not for: grading (grader.py).
"""

from __future__ import annotations

import re
from pathlib import Path

from mnist_compare.grade.submissions import Submission

EXAMPLE = Path(__file__).with_name("student_net.py")
NO_BUG = "no bug (the example itself)"

MUTATIONS = {
    "learning rate 1% too large": (
        ("self.lr = np.float32(lr)", "self.lr = np.float32(lr * 1.01)"),
        {"single step": "the learning rate is off by +1.00%", "short batch": "off by +1.00%",
         "batch of one": "off by +1.00%", "trajectory": ""}),
    "loss summed, not averaged": (
        ("        dZ2 = (P - Y) / n", "        dZ2 = P - Y"),
        {"gradients": "the loss is summed over the batch, not averaged",
         "single step": "128 = n times Keras': the loss is summed", "short batch": "96 = n times", "trajectory": ""}),
    "last batch averaged over batch_size": (
        ("        dZ2 = (P - Y) / n", "        dZ2 = (P - Y) / 128"),
        {"short batch": "the batch of 96 is averaged over batch_size 128, not over its own size",
         "batch of one": "the batch of 1 is averaged over batch_size 128", "trajectory": ""}),
    "softmax without the max shift": (
        ("        Z2 = Z2 - Z2.max(axis=1, keepdims=True)", "        Z2 = Z2"),
        {"stability": "subtract the row maximum before exp"}),
    "initialisation of the wrong scale": (
        ("limit1 = np.sqrt(6 / (input_size + hidden_size))", "limit1 = np.sqrt(1 / (input_size + hidden_size))"),
        {"initialisation": "W1: std 0.0"}),
    "wrong sign in one gradient": (
        ("db2 = dZ2.sum(axis=0)", "db2 = -dZ2.sum(axis=0)"),
        {"gradients": "b2 differs most", "single step": "b2 differs most (relative error 2) (its sign is flipped)",
         "short batch": "b2 differs most", "batch of one": "b2 differs most", "trajectory": ""}),
    # issue 28: the forward pass, the seed, a batch of one, and where a trajectory parts
    "the hidden bias b1 not added": (
        ("        Z1 = X @ self.W1 + self.b1", "        Z1 = X @ self.W1"),
        {"forward": "predict does not change with b1: the bias b1 is not added?",
         "gradients": "disagree with finite differences", "trajectory": "first parts at epoch 1, step 2"}),
    "softmax normalised over the wrong axis": (
        ("np.exp(Z2).sum(axis=1, keepdims=True)", "np.exp(Z2).sum(axis=0, keepdims=True)"),
        {"forward": "softmax normalised over the wrong axis", "gradients": "", "single step": "",
         "short batch": "", "batch of one": "", "stability": "", "trajectory": ""}),
    "the seed ignored: a global random state": (
        ("rng = np.random.default_rng(seed)", "rng = np.random"),
        {"determinism": "the seed is ignored: two nets built with the same seed start with different weights"}),
    "np.squeeze on the inputs": (
        ("        Z1 = X @ self.W1 + self.b1", "        X = np.squeeze(X)\n        Z1 = X @ self.W1 + self.b1"),
        {"batch of one": "on a batch of one example (X of shape (1, 784)): np.squeeze"}),
    "learning rate halved after 59 steps": (
        ("        self.W1 -= self.lr * dW1",
         "        self.steps = getattr(self, 'steps', 0) + 1\n        if self.steps == 60:\n"
         "            self.lr = self.lr / 2\n        self.W1 -= self.lr * dW1"),
        {"trajectory": "first parts at epoch 2, step 13 (global step 60), W2 first, after 59 identical steps"}),
}


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def audit_submissions(directory: Path) -> list[Submission]:
    """The example and each of its one-bug mutants written into `directory`, as submissions named by their
    bug (the example first, then MUTATIONS' order)."""
    original = EXAMPLE.read_text(encoding="utf-8")
    made = [(NO_BUG, original)]
    for name, ((line, buggy), _) in MUTATIONS.items():
        if line not in original:
            raise RuntimeError(f"the example no longer has the line the mutant {name!r} changes: {line!r}")
        made.append((name, original.replace(line, buggy)))
    submissions = []
    for name, text in made:
        path = directory / f"{slug(name)}.py"
        path.write_text(text, encoding="utf-8")
        submissions.append(Submission(name, path))
    return submissions
