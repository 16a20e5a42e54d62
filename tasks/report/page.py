"""The report as one page, reports/index.html: the ablation tables and their figures, the best cell
per budget, the solver comparison, the optimized step schedules, the convergence checks and pictures,
and each configuration's view in MLflow. Self-contained: the tables come from the report's own
Markdown and CSV files, every picture is inside the page (a data URI), nothing loads from the network;
it opens from disk, from MLflow's report run or as a mail attachment alike."""

import base64
import csv
import html
import re

import markdown

from tasks.compute.rows import charted

STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 1500px; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f0f0f0; }
img { max-width: 100%; display: block; margin: 1em 0; border: 1px solid #eee; }
nav a { margin-right: 1em; }
"""


def picture(path):
    """An <img> of the PNG at `path`, inside the page."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.name)}" src="data:image/png;base64,{data}">'


def tables(path):
    """A Markdown file of the report as HTML under the page's section: its title (h1) left out, its
    other headings one level down."""
    text = re.sub(r"<h1>.*?</h1>\n?", "", markdown.markdown(path.read_text(), extensions=["tables"]))
    return re.sub(r"<(/?)h([2-5])>", lambda tag: f"<{tag[1]}h{int(tag[2]) + 1}>", text)


def csv_table(path):
    """A CSV file of the report as an HTML table, its header first."""
    with open(path, newline="") as file:
        header, *lines = list(csv.reader(file))
    cells = lambda line, tag: "".join(f"<{tag}>{html.escape(value)}</{tag}>" for value in line)
    return f"<table><tr>{cells(header, 'th')}</tr>" + "".join(f"<tr>{cells(line, 'td')}</tr>" for line in lines) + "</table>"


def pictures(folder):
    """Each PNG of `folder` under its name."""
    return "\n".join(f"<h3>{html.escape(path.stem)}</h3>\n{picture(path)}" for path in sorted(folder.glob("*.png")))


SHOWN = {".md": tables, ".png": picture, ".csv": csv_table, "": pictures}  # a file's suffix -> how the page shows it


def section(title, body):
    """(the section, its link in the page's menu)."""
    anchor = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return f'<section id="{anchor}"><h2>{html.escape(title)}</h2>\n{body}\n</section>', f'<a href="#{anchor}">{html.escape(title)}</a>'


def report_page(reports, sections, title, links):
    """The page of the report under `reports`, a section per (title, the files it shows) of `sections`
    (`tasks.report.outputs.sections`), titled `title`, with `links` (configuration -> the address of
    its MLflow view)."""
    parts = [section(name, "\n".join(SHOWN[(reports / file).suffix](reports / file) for file in files)) for name, files in sections]
    views = "".join(f'<li><a href="{html.escape(url)}">{html.escape(name)}</a></li>' for name, url in links.items())
    intro = f"Each configuration's {charted()} against NFE, a line per series (<code>mlflow ui</code> serving the study's store):"
    parts.append(section("In MLflow", f"<p>{intro}</p><ul>{views}</ul>"))
    body, menu = "\n".join(part for part, _ in parts), " ".join(link for _, link in parts)
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{STYLE}</style></head>\n'
        f"<body>\n<h1>{html.escape(title)}</h1>\n<nav>{menu}</nav>\n{body}\n</body>\n</html>\n"
    )
