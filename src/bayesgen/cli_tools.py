"""``bayesgen report``, ``bayesgen runs`` and ``bayesgen completion``: commands about runs and the shell.

Registered by :func:`bayesgen.cli.build_parser` through :func:`add_commands`; the logic
lives in :mod:`bayesgen.report`, :mod:`bayesgen.catalog` and :mod:`bayesgen.completion`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bayesgen.catalog import find_runs, format_runs
from bayesgen.completion import completion_script
from bayesgen.report import write_report
from bayesgen.tracking import track_run


def cmd_report(args) -> int:
    print(write_report(args.run, args.out, draw_missing=not args.no_draw))
    return 0


def cmd_runs(args) -> int:
    root = Path(args.dir)
    infos = find_runs(root, max_depth=args.depth)
    if not infos:
        print(f"no runs under '{root}' (looked {args.depth} levels deep); "
              f"train one with: bayesgen train --out {root / 'NAME'}",
              file=sys.stderr)
        return 0
    print(format_runs(infos, root))
    return 0


def cmd_completion(args) -> int:
    sys.stdout.write(completion_script(args.root_parser, args.shell))
    return 0


def cmd_track(args) -> int:
    tracker = track_run(args.run, args.to, uri=args.uri)
    where = getattr(tracker, "uri", None) or getattr(tracker, "logdir", "")
    print(f"logged {args.run} to {args.to}: {where}")
    return 0


def add_commands(command, with_run, root) -> None:
    """Add the commands to the CLI; ``command(name, func, help)`` and ``with_run(parser)`` are cli.py's helpers,
    ``root`` the whole parser (the completion script describes it)."""
    p = with_run(command("report", cmd_report, "Write one self-contained HTML page with everything a run holds."))
    p.add_argument("--out", help="the .html file to write (default RUN/report.html)")
    p.add_argument("--no-draw", action="store_true", help="only embed what the run holds; do not draw missing plots")

    p = command("runs", cmd_runs, "List the runs in a folder with their key metric, newest first.")
    p.add_argument("dir", nargs="?", default="runs", help="folder that holds run directories (default runs)")
    p.add_argument("--depth", type=int, default=3, help="how many folder levels to search (default 3)")

    p = with_run(command("track", cmd_track, "Log a finished run (train or fit) to MLflow or TensorBoard."))
    p.add_argument("--to", required=True, choices=("mlflow", "tensorboard"))
    p.add_argument("--uri", help="MLflow tracking URI or TensorBoard log folder (default: inside the run directory)")

    p = command("completion", cmd_completion, "Print a shell completion script for bash or zsh.")
    p.add_argument("shell", choices=("bash", "zsh"))
    p.set_defaults(root_parser=root)
