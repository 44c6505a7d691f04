"""``bayesgen report``, ``runs``, ``track`` and ``completion``: commands about runs and the shell;
the logic lives in :mod:`bayesgen.report`, :mod:`bayesgen.catalog`, :mod:`bayesgen.tracking` and
:mod:`bayesgen.completion`."""

from __future__ import annotations

import sys
from pathlib import Path

from bayesgen import layout
from bayesgen.catalog import find_runs, format_runs
from bayesgen.cli.common import output_path
from bayesgen.completion import completion_script
from bayesgen.report import write_report
from bayesgen.tracking import track_run


def cmd_report(args) -> int:
    output_path(args.out, args.run, layout.REPORT)  # where it goes can be written (its suffix: write_report)
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


def register(commands) -> None:
    p = commands.add_on_run("report", cmd_report, "Write one self-contained HTML page with everything a run holds.",
                            "bayesgen report runs/digits                "
                            "# -> runs/digits/report.html, one self-contained page")
    p.add_argument("--out", help="the .html file to write (default RUN/report.html)")
    p.add_argument("--no-draw", action="store_true", help="only embed what the run holds; do not draw missing plots")

    p = commands.add("runs", cmd_runs, "List the runs in a folder with their key metric, newest first.",
                     "bayesgen runs runs/")
    p.add_argument("dir", nargs="?", default="runs", help="folder that holds run directories (default runs)")
    p.add_argument("--depth", type=int, default=3, help="how many folder levels to search (default 3)")

    p = commands.add_on_run("track", cmd_track, "Log a finished run (train or fit) to MLflow or TensorBoard.",
                            "bayesgen track runs/digits --to mlflow        "
                            "# then: mlflow ui --backend-store-uri sqlite:///runs/digits/mlflow/mlflow.db")
    p.add_argument("--to", required=True, choices=("mlflow", "tensorboard"))
    p.add_argument("--uri", help="MLflow tracking URI or TensorBoard log folder (default: inside the run directory)")

    p = commands.add("completion", cmd_completion, "Print a shell completion script for bash or zsh.",
                     "bayesgen completion bash > ~/.local/share/bash-completion/completions/bayesgen\n"
                     "  bayesgen completion zsh > ~/.zfunc/_bayesgen")
    p.add_argument("shell", choices=("bash", "zsh"))
    p.set_defaults(root_parser=commands.root)
