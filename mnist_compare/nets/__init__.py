"""What is compared: my_net (NumPy), the Keras twin, the net contract any net implements, the loader of a
user's net, and --check, which verifies a net against the Keras twin."""
