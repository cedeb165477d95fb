"""This process and its machine: stop signals (shutdown.py) and what the machine is and how busy (machine.py).

Imports nothing else of the package."""
