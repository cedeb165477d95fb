"""`mnist-compare example NAME`: prints an example network's source, so that a user who installed the wheel has
the file the README and --help cite (in a clone it is examples/NAME.py). A command of the group in main.py.

Exit codes: 0 printed, 2 usage (an unknown NAME, which Click refuses with the names there are).
"""

from __future__ import annotations

from importlib import resources

import click

from mnist_compare.cli.options import COMMAND_SETTINGS

# Each example's name and the package module that is its source: the wheel carries modules, not examples/.
EXAMPLES = {"student_net": "grade/student_net.py"}

HELP = """Print the source of an example network to stdout, to start from or to check:

\b
  mnist-compare example student_net > student_net.py
  mnist-compare --net_type student_net.py:StudentNet --check

student_net: a two-layer network written the way a course teaches it (plain NumPy, one line per formula)
that implements the network contract and passes every check.
"""


@click.command("example", help=HELP, short_help="Print an example network's source (student_net).",
               context_settings=COMMAND_SETTINGS)
@click.argument("name", type=click.Choice(sorted(EXAMPLES)), metavar="NAME")
def example_command(name: str) -> None:
    click.echo(example_source(name), nl=False)


def example_source(name: str) -> str:
    """The source text of the example `name` (a key of EXAMPLES), as the package holds it."""
    return resources.files("mnist_compare").joinpath(EXAMPLES[name]).read_text(encoding="utf-8")
