"""mkdocs hook: turn each runnable tutorial (docs/tutorials/NN_*.py) into a page.

The module docstring is the page's opening markdown; a comment line ``# ## Title`` becomes a
heading, other comment lines directly above code become prose, and code becomes fenced
Python. The scripts stay the single source: CI runs them (tests/test_tutorials.py) and the
site shows them.
"""

from __future__ import annotations

import ast
from pathlib import Path

from mkdocs.structure.files import File


def script_to_markdown(source: str) -> str:
    module = ast.parse(source)
    docstring = ast.get_docstring(module, clean=True) or ""
    body_start = module.body[1].lineno - 1 if ast.get_docstring(module) and len(module.body) > 1 else 0
    lines = source.splitlines()[body_start:]
    out, code = [docstring, ""], []

    def flush_code():
        while code and not code[-1].strip():
            code.pop()
        while code and not code[0].strip():
            code.pop(0)
        if code:
            out.extend(["```python", *code, "```", ""])
        code.clear()

    for line in lines:
        stripped = line.strip()
        if line.startswith("# ") or line == "#":
            flush_code()
            text = line[2:] if line.startswith("# ") else ""
            out.append(text)
            if text.startswith("#"):
                out.append("")
        else:
            if not code and not stripped:
                continue
            if not code and out and out[-1] != "":
                out.append("")
            code.append(line)
    flush_code()
    return "\n".join(out) + "\n"


def on_files(files, config):
    folder = Path(config["docs_dir"]) / "tutorials"
    for script in sorted(folder.glob("[0-9]*.py")):
        page = script_to_markdown(script.read_text())
        run = (f"\n---\n\nThis page is generated from `docs/tutorials/{script.name}`; "
               f"run it with `python docs/tutorials/{script.name}`.\n")
        files.append(File.generated(config, f"tutorials/{script.stem}.md", content=page + run))
    return files
