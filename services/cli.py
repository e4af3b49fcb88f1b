"""The ``unmogrowp`` command.

Each subcommand belongs to the package that implements it: the package gives
``add_arguments(parser)`` to declare its options and ``run(args) -> int`` to
run. This module only wires them together, plus ``up``, which supervises the
ingestion service and the tracker as two child processes.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "up": ("services.supervisor", "run the ingestion service and the tracker together on embedded defaults"),
    "ingestion": ("ingestion.main", "run the ingestion service"),
    "tracker": ("customer_tracker.main", "run the customer-success tracker"),
    "replay": ("ingestion.replay", "replay public click logs through a running ingestion service"),
    "customers": ("customer_tracker.cli", "manage pilot customers through the tracker's API"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Build the parser; only ``command``'s module is imported, so each subcommand starts quickly."""
    parser = argparse.ArgumentParser(
        prog="unmogrowp",
        description="UnMoGrowP attribution platform: services and tools.",
        epilog="The admin token is read from UNMOGROWP_ADMIN_TOKEN; tracing follows the OTEL_* variables.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        subparser = subparsers.add_parser(
            name,
            help=help_text,
            description=help_text,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        if name == command:
            module = importlib.import_module(module_name)
            module.add_arguments(subparser)
            subparser.set_defaults(run=module.run)
    return parser


def _command_in(argv: list[str]) -> str | None:
    for argument in argv:
        if not argument.startswith("-"):
            return argument if argument in SUBCOMMANDS else None
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(_command_in(argv))
    args = parser.parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
