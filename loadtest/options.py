"""Command-line options that the socket benchmarks share: batches and CPU pinning."""

from __future__ import annotations

import argparse
import os


def add_batch_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch-size", type=int, default=1000, help="events per request (default 1000)")
    parser.add_argument("--templates", type=int, default=4, help="pre-built batches per app (default 4)")


def add_pinning_options(parser: argparse.ArgumentParser, *, pinned: str, no_pinning_help: str) -> None:
    """Add --server-cpu, --client-cpu and --no-pinning, where `pinned` names what --server-cpu pins."""
    parser.add_argument("--server-cpu", type=int, default=0, help=f"CPU that {pinned} runs on (default 0)")
    parser.add_argument("--client-cpu", type=int, default=1, help="CPU the load generator is pinned to (default 1)")
    parser.add_argument("--no-pinning", action="store_true", help=no_pinning_help)


def check_pinning(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit with a usage error unless both CPUs are available here and differ.

    With --no-pinning, nothing is checked.
    """
    if args.no_pinning:
        return
    available = os.sched_getaffinity(0)
    for option in ("server_cpu", "client_cpu"):
        if getattr(args, option) not in available:
            parser.error(f"--{option.replace('_', '-')}: CPU {getattr(args, option)} is not available here "
                         f"(available: {sorted(available)}); choose another or pass --no-pinning")
    if args.server_cpu == args.client_cpu:
        parser.error("--server-cpu and --client-cpu must differ, so that the load generator never takes the server's core")
