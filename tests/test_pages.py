"""The pages a user opens offline: DVC's plots template with Vega inside it (tools/vega_page.py). The
pages themselves are opened in Chromium where they are made: the plots pages in test_study_dvc, the
report page in test_flows."""

import hashlib

import pytest
from dvc_render.html import HTML

from tools import vega_page


def test_the_template_holds_the_libraries_in_load_order_and_no_address_to_load_them_from():
    scripts = [vega_page.bundle(package) for package in vega_page.BUNDLES]
    template = vega_page.TEMPLATE.read_text()  # bin/setup wrote it
    assert template == vega_page.page(scripts)
    positions = [template.index(script) for script in scripts]
    assert positions == sorted(positions) and "vegaEmbed=" in scripts[-1]
    assert "<script src" not in template and "cdn.jsdelivr" not in template
    page = HTML(template).with_element("<div id='plot'></div>").embed()  # what dvc-render does with it
    assert "<div id='plot'></div>" in page and "{plot_divs}" not in page


def test_a_library_that_is_not_the_pinned_file_is_refused(tmp_path):
    version, member, sha256 = vega_page.BUNDLES["vega-embed"]
    cached = tmp_path / f"vega-embed-{version}.js"
    cached.write_bytes((vega_page.CACHE / cached.name).read_bytes() + b"\n// changed")
    with pytest.raises(SystemExit, match=f"not that of vega-embed@{version}'s {member}"):
        vega_page.bundle("vega-embed", cache=tmp_path)
    cached.write_bytes((vega_page.CACHE / cached.name).read_bytes())
    assert hashlib.sha256(vega_page.bundle("vega-embed", cache=tmp_path).encode()).hexdigest() == sha256
