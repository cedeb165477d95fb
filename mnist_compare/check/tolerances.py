"""The bounds every numeric check is held to. A net passes a numeric check when its distance from the exact
float64 reference (exact.py) is within SPREAD_FACTOR times float32's own distance from it, plus a small
floor: the bound adapts to how well conditioned each step is (Adam's m / (sqrt(v) + eps) amplifies float32
round-off wherever |gradient| is near eps, and a rarely lit pixel's weight keeps moving by ~lr on a gradient
seen once).

float32's distance is the largest of KERAS_ORDERS runs of the twin and NUMPY_ORDERS runs of the exact formulas
in float32, each on the same batch with its rows in another order (the same mathematics, another float32
summation order), over every parameter: the ill-conditioned elements are few (one of W2's 320 at Adam, lr
0.1, seed 5; one of W1's 25,088 at batch 100, seed 18), and three samples could all miss them. The
trajectory's samples are the float32 formulas and the exact run nudged by STEP_FLOOR, no twin (checks.py
says why). Each figure is the calibration's (bench/calibrate.py, results/calibration.md), stated beside the
measurement it came from.
"""

KERAS_ORDERS = 1  # the twin on the rows as given: each Keras twin costs its tracing (~0.5 s a check)
NUMPY_ORDERS = 5  # the exact formulas in float32 on five more orders: cheap (no tracing), the tail's samples
# my_net against exact over 20 seeds x adam/momentum/sgd x lr 0.1/0.001 x hidden 32/64 x batch 128/100: at most
# 4.7 times Keras' largest distance (Adam, single-order Keras: 8.7 times, hence the more orders); a 0.5 % lr slip
# is 5e-3 from exact, Keras' Adam at most 3e-4 away: margin >= 3.
SPREAD_FACTOR = 5.0
# The trajectory's samples add the exact run with every step STEP_FLOOR larger: 94 steps of Adam amplify any
# difference of a step, not only round-off. my_net at adam, lr 0.1, seed 7 was 5.3 times the float32 formulas'
# distance at step 46 (one weight of a pixel lit once in 40 batches: its gradient 2.12e-6 against exact's 2.11e-6,
# from weights elsewhere 1.5e-4 apart, then ~lr a step while sqrt(v) ~ eps), 0.08 of the bound with the nudged run.
STEP_FLOOR = 2e-5  # relative to the largest update: a float32 per-example loop accumulates ~n eps, 7.6e-6 at n 128
GRADIENT_FLOOR = 2e-5  # relative to the largest gradient, as STEP_FLOOR; a wrong gradient is 0.5-2
FORWARD_FLOOR = 1e-6  # absolute on probabilities (float32 is ~1e-7 away), relative on the loss
TRAJECTORY_FLOOR = 2e-6  # absolute on weights: SGD's paired runs end 1.2e-7 apart (tests/test_keras_net.py)
# relative, float32 central differences along directions: my_net at hidden 32 over 2,400 seeds had a median of
# 1e-3 and a tail to 9.6e-3, and one CI run drew a seed at 1.09e-2 (1e-2 failed my_net); a wrong gradient is 0.5-2
FINITE_DIFFERENCE_TOLERANCE = 2e-2
