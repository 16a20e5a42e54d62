"""DVC's plots page without the network: `dvc plots show` and `dvc plots diff` write a page that
loads Vega, Vega-Lite and vega-embed from a CDN (dvc-render's `VegaRenderer.SCRIPTS`), blank on a
machine without internet. This writes the HTML template that .dvc/config names (`plots.html_template`)
with the three libraries inside it, so that every page DVC writes from it renders offline, wherever
it is moved.

`python -m tools.vega_page` (bin/setup runs it) takes each library from the npm registry (`npm pack`,
the versions dvc-render loads, each file checked against its SHA-256 below) into a cache folder, then
(re)writes .dvc/offline_plots.html from them."""

import argparse
import hashlib
import subprocess
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / ".dvc" / "offline_plots.html"  # .dvc/config: [plots] html_template = offline_plots.html
CACHE = ROOT / ".dvc" / "tmp" / "vega"
BUNDLES = {  # npm package -> (version, its file, SHA-256): the versions dvc-render 1.0 loads from its CDN, in load order
    "vega": ("5.20.2", "build/vega.min.js", "4794d0169cb1f3ebad8117fe98ba5bd652dd725905ec0384e832391dbccb03be"),
    "vega-lite": ("5.2.0", "build/vega-lite.min.js", "d73157451b3978015ab31dacd55ff90d986ab8663fc0abed50f97b3cd90002cb"),
    "vega-embed": ("6.18.2", "build/vega-embed.min.js", "1ba9826431ddc9805e815ad92acc811c819f2bfd32bda2a128b8c4b5070fab5e"),
}
PAGE = """<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>DVC Plot</title>
{scripts}
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""  # dvc-render's page with the libraries inline instead of its {scripts} (the CDN's)


def bundle(package, cache=CACHE):
    """The text of `package`'s file of `BUNDLES`, from `cache` or else from the npm registry; a
    SystemExit if npm is missing or the file is not the one pinned."""
    version, member, sha256 = BUNDLES[package]
    path = cache / f"{package}-{version}.js"
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        path.write_bytes(packed(package, version, member))
    content = path.read_bytes()
    found = hashlib.sha256(content).hexdigest()
    if found != sha256:
        raise SystemExit(f"{path}: SHA-256 {found}, not that of {package}@{version}'s {member} ({sha256}); delete it to fetch it again")
    return content.decode("utf8")


def packed(package, version, member):
    """The bytes of `member` of the npm package `package`@`version`, by `npm pack`."""
    with tempfile.TemporaryDirectory() as folder:
        try:
            done = subprocess.run(
                ["npm", "pack", "--silent", f"{package}@{version}", "--pack-destination", folder],
                capture_output=True,
                text=True,
                check=True,
            )
        except (FileNotFoundError, subprocess.CalledProcessError) as failed:
            raise SystemExit(f"npm pack {package}@{version} failed ({failed}): npm (Node.js) must reach the npm registry") from failed
        with tarfile.open(Path(folder) / done.stdout.split()[-1]) as archive:
            return archive.extractfile(f"package/{member}").read()


def page(scripts):
    """The HTML template of DVC's plots page with `scripts` (JavaScript texts) inline, in order."""
    return PAGE.format(scripts="\n".join(f'    <script type="text/javascript">\n{script}\n    </script>' for script in scripts))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.vega_page", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=TEMPLATE, help=f"the template to write (default {TEMPLATE.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    args.out.write_text(page([bundle(package) for package in BUNDLES]), encoding="utf8")
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
