"""Optional static copies of a published page (PNG screenshot, PDF print) made with a headless Chrome or Chromium.

The HTML pages are the reports; a PNG or PDF is a convenience for e-mail and slides. Nothing here is required:
without a Chrome binary the export is skipped with one line that says how to point at one (``CR_CHROME``).
Every copy is written beside its final name and moved into place, like the reports themselves.

No Dagster imports here: the CLI calls :func:`export_page` after a successful run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

CHROME_ENV = "CR_CHROME"
CHROME_NAMES = ("chromium", "chromium-browser", "google-chrome")
FORMATS = ("png", "pdf")
WINDOW_SIZE = (1440, 2400)
TIMEOUT_SECONDS = 120
NO_CHROME_MESSAGE = f"PNG/PDF export skipped: no Chrome or Chromium found (set {CHROME_ENV})"


class ExportError(Exception):
    """A static copy could not be made (one line naming the page and the problem)."""


def find_chrome() -> str | None:
    """The Chrome/Chromium binary to use: ``$CR_CHROME`` when set, else the first of CHROME_NAMES on PATH."""
    override = os.environ.get(CHROME_ENV, "").strip()
    if override:
        return shutil.which(override) or (override if Path(override).is_file() else None)
    for name in CHROME_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def parse_formats(text: str) -> tuple[str, ...]:
    """``"png,pdf"`` -> ``("png", "pdf")``; an unknown format raises ValueError naming it."""
    formats = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    unknown = [name for name in formats if name not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"unknown export format {', '.join(unknown) or repr(text)} (choose from {', '.join(FORMATS)})")
    return formats


def _chrome_command(chrome: str, profile_dir: str, output_flag: str, page: Path) -> list[str]:
    command = [
        chrome,
        "--headless=new",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        f"--user-data-dir={profile_dir}",
        f"--window-size={WINDOW_SIZE[0]},{WINDOW_SIZE[1]}",
        "--no-pdf-header-footer",
        output_flag,
        page.resolve().as_uri(),
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.insert(1, "--no-sandbox")  # Chrome refuses to start its sandbox as root (e.g. in a container)
    return command


def export_page(page: Path, target: Path, chrome: str) -> Path:
    """Write a PNG (``target`` ending ``.png``) or PDF (``.pdf``) of the HTML file ``page``; returns ``target``."""
    page, target = Path(page), Path(target)
    kind = target.suffix.lower().lstrip(".")
    if kind not in FORMATS:
        raise ExportError(f"{target}: the file name must end in .png or .pdf")
    if not page.is_file():
        raise ExportError(f"{page}: no such page to export")
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=f".{kind}")
    os.close(handle)
    os.unlink(temp_name)  # Chrome creates the file itself; an empty leftover would look like a finished copy
    flag = f"--screenshot={temp_name}" if kind == "png" else f"--print-to-pdf={temp_name}"
    try:
        # a browser stopped at the timeout may leave helper processes writing the profile as it is removed: what
        # they leave in the system temporary folder is no reason to fail the export
        with tempfile.TemporaryDirectory(prefix="cr-chrome-", ignore_cleanup_errors=True) as profile_dir:
            try:
                finished = subprocess.run(
                    _chrome_command(chrome, profile_dir, flag, page),
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=TIMEOUT_SECONDS,
                )
            except subprocess.TimeoutExpired:
                raise ExportError(
                    f"{page.name}: {Path(chrome).name} did not finish the {kind.upper()} within {TIMEOUT_SECONDS} s"
                ) from None
            except OSError as error:
                raise ExportError(f"{page.name}: cannot start {chrome}: {error.strerror or error}") from None
        if finished.returncode != 0 or not Path(temp_name).is_file() or Path(temp_name).stat().st_size == 0:
            last_line = (finished.stderr.strip().splitlines() or ["no output"])[-1]
            raise ExportError(
                f"{page.name}: {Path(chrome).name} wrote no {kind.upper()} (exit {finished.returncode}): {last_line}"
            )
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, target)
    finally:
        if os.path.exists(temp_name):
            os.unlink(temp_name)
    return target


def export_dashboard(out_dir: Path, formats: tuple[str, ...], chrome: str | None = None) -> list[str]:
    """Static copies of ``sla_dashboard.html`` in ``out_dir`` (``sla_dashboard.png`` / ``.pdf``) and, for ``pdf``,
    the printed compliance report (``compliance_report.pdf``: the copy that is signed); one message line per
    file, or the single skip line when no Chrome binary is found."""
    chrome = chrome or find_chrome()
    if chrome is None:
        return [NO_CHROME_MESSAGE]
    copies = [(Path(out_dir) / "sla_dashboard.html", kind) for kind in formats]
    if "pdf" in formats:
        copies.append((Path(out_dir) / "compliance_report.html", "pdf"))
    lines = []
    for page, kind in copies:
        label = kind.upper() if page.name == "sla_dashboard.html" else f"{kind.upper()} (compliance report)"
        try:
            written = export_page(page, page.with_suffix(f".{kind}"), chrome)
            lines.append(f"{label}: {written.resolve()}")
        except ExportError as error:
            lines.append(f"{label} export failed: {error}")
    return lines
