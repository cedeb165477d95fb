#!/usr/bin/env bash
# Gradescope's setup.sh: runs once when the autograder image is built (Ubuntu, with Python 3.11 or newer).
set -euo pipefail
pip3 install 'mnist-compare==1.2.0'
