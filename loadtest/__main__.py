"""`python -m loadtest --help` lists the load-test options and their environment variables.

`locust --help` cannot show them, because Locust 2.x prints its help before it imports the
locustfiles that add these options.
"""

from __future__ import annotations

import argparse
import sys

from locust.argument_parser import get_empty_argument_parser

from loadtest.settings import add_arguments


def build_parser() -> argparse.ArgumentParser:
    parser = get_empty_argument_parser(add_help=True, default_config_files=[])
    parser.prog = "locust -f loadtest/"
    parser.description = "Options that `locust -f loadtest/` adds to Locust's own."
    before = set(parser._option_string_actions)
    add_arguments(parser)
    variables = [
        f"  {action.option_strings[0]:<28} {action.env_var}"
        for option, action in parser._option_string_actions.items()
        if option not in before and option == action.option_strings[0] and getattr(action, "env_var", None)
    ]
    parser.epilog = "environment variables:\n" + "\n".join(variables)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    build_parser().parse_args(arguments or ["--help"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
