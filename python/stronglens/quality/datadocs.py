"""Offline Data Docs: make GE's pages readable without a network and draw a static index.

The pages are post-processed (remote scripts and stylesheets removed, a local stylesheet linked,
the JavaScript-drawn index replaced by a static table of every check of every build).
"""

from __future__ import annotations

import html
import os
import re
import shutil
from datetime import datetime
from pathlib import Path

OFFLINE_CSS_FILE = "data_docs_offline.css"
#: The Data Docs site under $STRONGLENS_HOME (GE's own state goes to $STRONGLENS_HOME/gx).
REPORTS_DIRNAME = "reports"
#: Marker that a Data Docs page has already been made offline-readable.
OFFLINE_MARKER = '<meta name="stronglens-offline" content="1">'

_REMOTE = r"""["']https?://[^"']*["']"""
_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script\s*>", re.DOTALL | re.IGNORECASE)
_REMOTE_LINK = re.compile(rf"<link\b[^>]*\bhref\s*=\s*{_REMOTE}[^>]*>", re.IGNORECASE)
_REMOTE_IMG = re.compile(r"<img\b[^>]*?\bsrc\s*=\s*[\"'](https?://[^\"']*)[\"'][^>]*>", re.IGNORECASE)
#: A reference into the site's static/ folder; GE writes some with the wrong depth (favicon links).
_STATIC_REF = re.compile(r"""((?:src|href)\s*=\s*["'])(?:\.\.?/)*static/""", re.IGNORECASE)
_CSS_REMOTE_URL = re.compile(r"url\(\s*[\"']?(https?://[^\"')]*)[\"']?\s*\)", re.IGNORECASE)


def _local_image(url: str, static_images: Path, relative_to: Path) -> str | None:
    """The relative path of the local copy of a remote image (GE ships its logos), if any."""
    name = url.split("?", 1)[0].rsplit("/", 1)[-1]
    local = static_images / name
    return os.path.relpath(local, relative_to) if local.is_file() else None


def make_offline(reports_dir: Path, stylesheet: Path) -> int:
    """Make every Data Docs page under ``reports_dir`` readable without a network; return pages changed.

    References into the site's ``static/`` folder are re-pointed from each page's own depth (GE
    writes some one level short).  Scripts are dropped (all of them: the inline ones only drive the
    CDN libraries), remote stylesheets are replaced by ``stylesheet`` (copied into the site), remote
    images by GE's local copies where they exist (else removed), and remote ``url()`` in the site's
    CSS files, ``<style>`` blocks and style attributes likewise (else ``none``).
    """
    styles = reports_dir / "static" / "styles"
    images = reports_dir / "static" / "images"
    styles.mkdir(parents=True, exist_ok=True)
    local_css = styles / stylesheet.name
    shutil.copyfile(stylesheet, local_css)

    def css_urls(text: str, folder: Path) -> str:
        """Remote url(...) in CSS (files, <style> blocks, style attributes) -> local copy or none."""

        def replace(match: re.Match[str]) -> str:
            local = _local_image(match.group(1), images, folder)
            return f"url('{local}')" if local else "none"

        return _CSS_REMOTE_URL.sub(replace, text)

    for css in styles.glob("*.css"):
        text = css.read_text()
        fixed = css_urls(text, css.parent)
        if fixed != text:
            css.write_text(fixed)
    changed = 0
    for page in reports_dir.rglob("*.html"):
        text = page.read_text()
        if OFFLINE_MARKER in text:
            continue

        def img(match: re.Match[str], page: Path = page) -> str:
            local = _local_image(match.group(1), images, page.parent)
            return match.group(0).replace(match.group(1), local) if local else ""

        static = os.path.relpath(reports_dir / "static", page.parent)
        text = _STATIC_REF.sub(lambda m, static=static: f"{m.group(1)}{static}/", text)
        text = _SCRIPT.sub("", text)
        text = _REMOTE_LINK.sub("", text)
        text = _REMOTE_IMG.sub(img, text)
        text = css_urls(text, page.parent)
        link = f'<link rel="stylesheet" href="{os.path.relpath(local_css, page.parent)}">'
        text = re.sub(r"<head>", f"<head>\n{OFFLINE_MARKER}\n{link}", text, count=1, flags=re.IGNORECASE)
        page.write_text(text)
        changed += 1
    return changed


def _build_number(run_name: str) -> int:
    match = re.fullmatch(r"build-(\d+)", run_name)
    return int(match.group(1)) if match else -1


def _readable_time(run_time: str) -> str:
    """GE's run-time key '20261127T121620.955150Z' as '2026-11-27 12:16:20'."""
    try:
        return datetime.strptime(run_time, "%Y%m%dT%H%M%S.%fZ").strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return run_time


def write_index(reports_dir: Path, validations: list[tuple[tuple[str, ...], bool, int, int]]) -> Path:
    """Replace GE's JavaScript-drawn index with a static table of every check: newest build first,
    then newest check of that build first, suites in name order."""
    rows = []
    ordered = sorted(validations, key=lambda v: v[0][0])
    ordered.sort(key=lambda v: v[0][2], reverse=True)  # run time keys sort chronologically as text
    ordered.sort(key=lambda v: _build_number(v[0][1]), reverse=True)
    for (suite, run_name, run_time, *batch), success, evaluated, passed in ordered:
        page = "validations/" + "/".join([suite, run_name, run_time, *batch]) + ".html"
        status = "passed" if success else "failed"
        rows.append(
            "<tr>"
            f"<td>{html.escape(run_name)}</td><td>{html.escape(_readable_time(run_time))}</td>"
            f'<td><a href="expectations/{html.escape(suite)}.html">{html.escape(suite)}</a></td>'
            f'<td class="{status}">{status}</td><td>{passed}/{evaluated}</td>'
            f'<td><a href="{html.escape(page)}">results</a></td>'
            "</tr>"
        )
    document = f"""<!DOCTYPE html>
<html>
<head>
{OFFLINE_MARKER}
<meta charset="utf-8">
<title>stronglens quality checks</title>
<link rel="stylesheet" href="static/styles/{OFFLINE_CSS_FILE}">
</head>
<body>
<div class="stronglens-index">
<h1>stronglens quality checks</h1>
<p>Every <code>stronglens check</code> of every build: one row per suite. A build is served as current
only when all its suites passed (see <code>stronglens builds</code>). Suite definitions live in
<code>expectations/</code> in the repository.</p>
<table class="table table-sm table-bordered">
<thead><tr><th>Build</th><th>Checked (UTC)</th><th>Suite</th><th>Result</th><th>Expectations passed</th>
<th>Details</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
</table>
</div>
</body>
</html>
"""
    index = reports_dir / "index.html"
    index.write_text(document)
    return index
