"""MkDocs hook: fill the placeholders of hand-written pages with tables and pictures made from the
code and the committed results, so that they cannot go stale."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

RESULT_PICTURES = [
    ("benchmarks/results/learning/100k/plots/curves.png",
     "Learning curves at 100k env steps: QMLE (paper and efficient presets) against Tianshou's TD3 "
     "and auto-α SAC, mean ± s.e. over seeds"),
    ("benchmarks/results/speed/speed_walker-walk.png",
     "Training speed against Tianshou's TD3 on walker-walk, one torch thread"),
]


def command_table() -> str:
    from tianshou_qmle.experiment.commands import COMMAND_MODULES, load_command

    rows = []
    for name, module_name in COMMAND_MODULES.items():
        first = (load_command(name).__doc__ or "").strip().splitlines()[0]
        rows.append(f"| `{name}` (`examples/{module_name}.py`) | {first} |")
    return "\n".join(rows)


def results_pictures() -> str:
    parts = []
    for path, caption in RESULT_PICTURES:
        name = "assets/benchmarks/" + path.removeprefix("benchmarks/").replace("/", "__")
        if (ROOT / path).is_file():
            parts.append(f"![{caption}]({name})\n\n*{caption}.*\n")
        else:
            parts.append(f"*{caption}: not measured yet (see [Benchmarks](benchmarks.md)).*\n")
    return "\n".join(parts)


SIGNATURE = re.compile(r"\{\{ signature:([\w.]+) \}\}")


def signature(path: str) -> str:
    """``path``'s call signature as a Python code block, from the code itself."""
    module_name, _, name = path.rpartition(".")
    obj = getattr(importlib.import_module(module_name), name)
    text = f"{name}{inspect.signature(obj)}"
    if len(text) > 90:  # one parameter per line, as in the code
        head, _, rest = text.partition("(")
        body, _, returns = rest.rpartition(")")
        parts = [p.strip() for p in split_top_level(body)]
        text = head + "(\n" + "".join(f"    {p},\n" for p in parts) + ")" + returns
    return f"```python\n{text}\n```"


def split_top_level(text: str) -> list[str]:
    """Split at commas outside brackets and quotes."""
    parts, depth, start, quote = [], 0, 0, ""
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in parts if p.strip()]


def on_page_markdown(markdown: str, page, config, files) -> str:
    markdown = SIGNATURE.sub(lambda m: signature(m.group(1)), markdown)
    if "{{ command_table }}" in markdown:
        markdown = markdown.replace("{{ command_table }}", command_table())
    if "{{ results_pictures }}" in markdown:
        markdown = markdown.replace("{{ results_pictures }}", results_pictures())
    return markdown
