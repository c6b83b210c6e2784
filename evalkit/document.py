"""A tiny document model rendered to Markdown, self-contained HTML and LaTeX (booktabs) tables.

Every string that may come from a study file or stored data (algorithm, env and hyperparameter
names, error messages) is escaped for the target format: ``html.escape`` in HTML, ``<``, ``>``,
``&`` and ``|`` in Markdown (which viewers may render as HTML), and LaTeX's special characters in
LaTeX. Nothing is ever inserted unescaped except the fixed markup written here.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass
class Block:
    kind: str  # "heading" | "text" | "list" | "table" | "figure" | "pre"
    text: str = ""
    level: int = 2
    items: list = field(default_factory=list)
    table: pd.DataFrame | None = None
    path: Path | None = None       # figure: the PNG (embedded in HTML)
    link: str = ""                 # figure: path relative to the report, for Markdown
    name: str = ""                 # table: a LaTeX label


@dataclass
class Document:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(Block("heading", text, level=level))

    def text(self, text: str) -> None:
        self.blocks.append(Block("text", text))

    def items(self, items: list[str]) -> None:
        if items:
            self.blocks.append(Block("list", items=list(items)))

    def table(self, df: pd.DataFrame, caption: str = "", name: str = "") -> None:
        self.blocks.append(Block("table", caption, table=df, name=name))

    def figure(self, png: Path, link: str, caption: str) -> None:
        self.blocks.append(Block("figure", caption, path=Path(png), link=link))

    def pre(self, text: str) -> None:
        self.blocks.append(Block("pre", text))


def _cell(v: object) -> str:
    if isinstance(v, float):
        return "" if pd.isna(v) else f"{v:.4g}"
    return "" if v is None else str(v)


def md_escape(s: str) -> str:
    return (str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
            .replace("\n", " "))


def to_markdown(doc: Document) -> str:
    out = [f"# {md_escape(doc.title)}", ""]
    for b in doc.blocks:
        if b.kind == "heading":
            out += ["#" * b.level + " " + md_escape(b.text), ""]
        elif b.kind == "text":
            out += [md_escape(b.text), ""]
        elif b.kind == "list":
            out += [f"- {md_escape(i)}" for i in b.items] + [""]
        elif b.kind == "pre":
            out += ["```", b.text.replace("```", "'''"), "```", ""]
        elif b.kind == "table":
            df = b.table
            if b.text:
                out += [f"*{md_escape(b.text)}*", ""]
            out.append("| " + " | ".join(md_escape(c) for c in df.columns) + " |")
            out.append("|" + "|".join("---:" if pd.api.types.is_numeric_dtype(df[c]) else "---"
                                      for c in df.columns) + "|")
            for row in df.itertuples(index=False):
                out.append("| " + " | ".join(md_escape(_cell(v)) for v in row) + " |")
            out.append("")
        elif b.kind == "figure":
            out += [f"![{md_escape(b.text)}]({b.link})", "", f"*{md_escape(b.text)}*", ""]
    return "\n".join(out)


CSS = """body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}
th,td{border-bottom:1px solid #ddd;padding:.25em .6em;text-align:left}th{border-bottom:2px solid #444}
td.num{text-align:right;font-variant-numeric:tabular-nums}figure{margin:1em 0 2em}img{max-width:100%}
figcaption,caption{font-size:.9em;color:#444;text-align:left;caption-side:top;padding-bottom:.3em}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto}h1{font-size:1.6em}h2{margin-top:1.6em}"""


def to_html(doc: Document) -> str:
    """One self-contained HTML file: inline CSS, figures embedded as base64 PNG data URIs."""
    e = html.escape
    out = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
           f"<title>{e(doc.title)}</title><style>{CSS}</style></head><body>", f"<h1>{e(doc.title)}</h1>"]
    for b in doc.blocks:
        if b.kind == "heading":
            lvl = min(max(b.level, 2), 6)
            out.append(f"<h{lvl}>{e(b.text)}</h{lvl}>")
        elif b.kind == "text":
            out.append(f"<p>{e(b.text)}</p>")
        elif b.kind == "list":
            out.append("<ul>" + "".join(f"<li>{e(str(i))}</li>" for i in b.items) + "</ul>")
        elif b.kind == "pre":
            out.append(f"<pre>{e(b.text)}</pre>")
        elif b.kind == "table":
            df = b.table
            num = [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]
            rows = ["<table>"]
            if b.text:
                rows.append(f"<caption>{e(b.text)}</caption>")
            rows.append("<thead><tr>" + "".join(f"<th>{e(str(c))}</th>" for c in df.columns) + "</tr></thead><tbody>")
            for row in df.itertuples(index=False):
                rows.append("<tr>" + "".join(f"<td class=\"num\">{e(_cell(v))}</td>" if n else f"<td>{e(_cell(v))}</td>"
                                             for v, n in zip(row, num)) + "</tr>")
            rows.append("</tbody></table>")
            out.append("".join(rows))
        elif b.kind == "figure":
            data = base64.b64encode(Path(b.path).read_bytes()).decode("ascii")
            out.append(f"<figure><img alt=\"{e(b.text)}\" src=\"data:image/png;base64,{data}\">"
                       f"<figcaption>{e(b.text)}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out)


LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                 "<": r"\textless{}", ">": r"\textgreater{}"}


def latex_escape(s: str) -> str:
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in str(s))


def to_latex_table(df: pd.DataFrame, caption: str = "", label: str = "") -> str:
    """A booktabs ``table`` environment (needs ``\\usepackage{booktabs}``)."""
    align = "".join("r" if pd.api.types.is_numeric_dtype(df[c]) else "l" for c in df.columns)
    lines = [r"\begin{table}[t]", r"\centering", r"\small"]
    if caption:
        lines.append(r"\caption{" + latex_escape(caption) + "}")
    if label:
        lines.append(r"\label{" + latex_escape(label).replace("\\_", "-") + "}")
    lines += [r"\begin{tabular}{" + align + "}", r"\toprule",
              " & ".join(latex_escape(c) for c in df.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(latex_escape(_cell(v)) for v in row) + r" \\" for row in df.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines)


def to_latex(doc: Document) -> str:
    """Every table of the document as booktabs LaTeX, in order."""
    header = f"% tables of {latex_escape(doc.title)}, written by evalkit; needs \\usepackage{{booktabs}}\n"
    return header + "\n\n".join(to_latex_table(b.table, b.text, b.name) for b in doc.blocks if b.kind == "table") + "\n"
