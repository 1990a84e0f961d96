"""Pages generated from the code at build time (mkdocs-gen-files), so that they cannot go stale:
the API reference, the flags of every command, the QMLE presets, and the benchmarks page."""

from __future__ import annotations

import re
from pathlib import Path

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parents[1]

REFERENCE_MODULES = {
    "Algorithms": [
        "tianshou_qmle.algorithm.qmle",
        "tianshou_qmle.algorithm.savo",
        "tianshou_qmle.algorithm.iq",
    ],
    "Networks": [
        "tianshou_qmle.net.qmle_net",
        "tianshou_qmle.net.critic",
        "tianshou_qmle.net.predictors",
        "tianshou_qmle.net.action_codec",
        "tianshou_qmle.net.savo",
        "tianshou_qmle.net.iq",
    ],
    "Search": [
        "tianshou_qmle.search.proposals",
        "tianshou_qmle.search.argmax",
        "tianshou_qmle.search.nearest",
    ],
    "Replay buffers": ["tianshou_qmle.data.buffer"],
    "Environments": [
        "tianshou_qmle.env.dmc",
        "tianshou_qmle.env.discretize",
        "tianshou_qmle.env.restricted",
        "tianshou_qmle.env.recsim",
        "tianshou_qmle.env.resumable",
    ],
    "Experiments": [
        "tianshou_qmle.experiment.presets",
        "tianshou_qmle.experiment.qmle_factory",
        "tianshou_qmle.experiment.iq_factory",
        "tianshou_qmle.experiment.savo_factory",
        "tianshou_qmle.experiment.runner",
        "tianshou_qmle.experiment.resume",
        "tianshou_qmle.experiment.highlevel",
        "tianshou_qmle.experiment.cli",
        "tianshou_qmle.experiment.watching",
    ],
    "Utilities": ["tianshou_qmle.exploration", "tianshou_qmle.utils", "tianshou_qmle.validation"],
}


def module_page(module: str) -> str:
    return "reference/api/" + module.removeprefix("tianshou_qmle.").replace(".", "/") + ".md"


def write_reference() -> None:
    lines = ["# API reference", "", "Generated from the docstrings of the code.", ""]
    for section, modules in REFERENCE_MODULES.items():
        lines += [f"## {section}", ""]
        for module in modules:
            page = module_page(module)
            lines.append(f"- [`{module}`]({page.removeprefix('reference/')})")
            with mkdocs_gen_files.open(page, "w") as f:
                f.write(f"# `{module}`\n\n::: {module}\n")
        lines.append("")
    with mkdocs_gen_files.open("reference/index.md", "w") as f:
        f.write("\n".join(lines))


def flag_rows(parser) -> list[str]:
    rows = []
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        flags = ", ".join(f"`{s}`" for s in action.option_strings)
        default = "" if action.default in (None, False) and action.nargs == 0 else f"`{action.default!r}`"
        text = (action.help or "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| {flags} | {default} | {text} |")
    return rows


def write_flags() -> None:
    from tianshou_qmle.experiment.commands import COMMAND_MODULES, load_command

    lines = [
        "# Flags of every command",
        "",
        "Generated from the commands' parsers: what `tianshou-qmle train COMMAND --help` and "
        "`python examples/SCRIPT.py --help` print, as tables.",
        "",
    ]
    for name in COMMAND_MODULES:
        module = load_command(name)
        first = (module.__doc__ or "").strip().splitlines()[0]
        lines += [
            f"## `{name}`",
            "",
            first,
            "",
            "| flag | default | meaning |",
            "|---|---|---|",
            *flag_rows(module.build_parser()),
            "",
        ]
    with mkdocs_gen_files.open("reference/flags.md", "w") as f:
        f.write("\n".join(lines))


def write_presets() -> None:
    from tianshou_qmle.experiment.presets import PAPER, QMLE_PRESETS

    names = list(QMLE_PRESETS)
    lines = [
        "# QMLE presets",
        "",
        "Generated from `tianshou_qmle.experiment.presets`: the value of every "
        "setting in each preset (bold where it differs from the paper's).",
        "",
        "| setting | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for key in PAPER.values:
        cells = []
        for name in names:
            value = QMLE_PRESETS[name].values[key]
            cells.append(f"**{value!r}**" if value != PAPER.values[key] else repr(value))
        lines.append(f"| `{key}` | " + " | ".join(cells) + " |")
    lines += ["", *(f"- **{p.name}** ({p.origin}): {p.summary}" for p in QMLE_PRESETS.values())]
    with mkdocs_gen_files.open("reference/presets.md", "w") as f:
        f.write("\n".join(lines) + "\n")


IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)]+)\)")
LINK = re.compile(r"(?<!!)\[([^\]]*)\]\(([^)#]+)(#[^)]*)?\)")


def write_benchmarks() -> None:
    """``benchmarks/README.md`` as a page, its images copied in, links to files shown as code."""
    source = ROOT / "benchmarks" / "README.md"
    text = source.read_text(encoding="utf-8")

    def image(match: re.Match) -> str:
        target = (source.parent / match.group(2)).resolve()
        if not target.is_file():
            return f"*(missing image {match.group(2)})*"
        name = "assets/benchmarks/" + str(target.relative_to(ROOT / "benchmarks")).replace("/", "__")
        with mkdocs_gen_files.open(name, "wb") as f:
            f.write(target.read_bytes())
        return f"![{match.group(1)}]({name})"

    def link(match: re.Match) -> str:
        target = match.group(2)
        if target.startswith(("http://", "https://")):
            return match.group(0)
        return f"{match.group(1)} (`benchmarks/{target}`)" if match.group(1) != target else f"`{target}`"

    text = LINK.sub(link, IMAGE.sub(image, text))
    with mkdocs_gen_files.open("benchmarks.md", "w") as f:
        f.write(text)


def copy_result_pictures() -> None:
    """The pictures the landing page shows (docs/hooks.py names them)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    for path, _ in hooks.RESULT_PICTURES:
        if (ROOT / path).is_file():
            name = "assets/benchmarks/" + path.removeprefix("benchmarks/").replace("/", "__")
            with mkdocs_gen_files.open(name, "wb") as f:
                f.write((ROOT / path).read_bytes())


write_reference()
write_flags()
write_presets()
write_benchmarks()
copy_result_pictures()
