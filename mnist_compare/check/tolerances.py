"""The tolerances every check is held to (the test suite's), each stated beside the figure it came from."""

STEP_TOLERANCE = 1e-4  # relative, one step from identical weights: my_net measured 2e-7; a 1% lr slip is 1e-2
GRADIENT_TOLERANCE = 1e-4  # relative, against the backend's autodiff: measured 2.4e-7 to 3.0e-7
# relative, float32 central differences along directions: my_net at hidden 32 over 2,400 seeds had a median of
# 1e-3 and a tail to 9.6e-3, and one CI run drew a seed at 1.09e-2 (1e-2 failed my_net); a wrong gradient is 0.5-2
FINITE_DIFFERENCE_TOLERANCE = 2e-2
FORWARD_TOLERANCE = 1e-5  # absolute on probabilities, relative on the loss: my_net and the example measure < 1e-6
WEIGHT_TOLERANCE = 2e-6  # absolute, after the paired trajectory: measured 1.2e-7 (tests/test_keras_net.py)
LOSS_TOLERANCE = 1e-5
