#!/usr/bin/env bash
# Gradescope's setup.sh: runs once when the autograder image is built. Works on Gradescope's Ubuntu 22.04 base
# image and its python3 (3.10), and on newer ones. The autograder zip holds mnist-compare's wheel beside this
# file: in a clone, `pip wheel --no-deps . -w dist` and zip dist/mnist_compare-*.whl with setup.sh,
# run_autograder and weights.toml. pip installs its dependencies (TensorFlow, Keras, ...) from PyPI.
set -euo pipefail
AUTOGRADER=${AUTOGRADER:-/autograder}  # tests point it at a folder of their own
if ! python3 -m pip --version >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq python3-pip >/dev/null
fi
python3 -m pip install "$AUTOGRADER"/source/mnist_compare-*.whl
