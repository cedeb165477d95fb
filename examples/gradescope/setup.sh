#!/usr/bin/env bash
# Gradescope's setup.sh: runs once when the autograder image is built (Ubuntu, with Python 3.11 or newer).
# The autograder zip holds mnist-compare's wheel beside this file: in a clone, `pip wheel --no-deps . -w dist`
# and zip dist/mnist_compare-*.whl with setup.sh, run_autograder and weights.toml. pip installs its
# dependencies (TensorFlow, Keras, ...) from PyPI.
set -euo pipefail
pip3 install /autograder/source/mnist_compare-*.whl
