"""Screenshots of the model page (`/`) and the offline API docs (`/docs`) for the README, taken with
Debian's Chromium driven by Playwright (no browser download) against a real uvicorn on loopback.

    python -m bench.screenshots --models-dir models --out docs/screenshots
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from bench.server import UvicornServer

SENTENCE = "a gorgeous , witty , seductive movie ."


def chromium_path() -> str | None:
    """Debian's Chromium (`apt-get install chromium`), or $SLIMTEXT_CHROMIUM; None when absent."""
    for candidate in (os.environ.get("SLIMTEXT_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def launch(playwright):
    return playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])


def _traffic(url: str, models_dir: Path, per_model: int = 50) -> None:
    """A few requests per model, so the page shows live counts and latency percentiles."""
    import json
    import urllib.request

    names = [p.name for p in sorted(models_dir.iterdir()) if (p / "manifest.json").is_file()]
    for i in range(per_model):
        for name in names:
            body = json.dumps({"texts": [f"{SENTENCE} {i}"], "model": name}).encode()
            req = urllib.request.Request(f"{url}/classify", body, {"content-type": "application/json"})
            urllib.request.urlopen(req, timeout=10).read()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models-dir", type=Path, default=Path("models"))
    p.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = p.parse_args(argv)
    if chromium_path() is None:
        print("error: no Chromium at /usr/bin/chromium (apt-get install -y chromium)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with UvicornServer(args.models_dir) as srv, sync_playwright() as pw:
        _traffic(srv.url, args.models_dir)
        browser = launch(pw)
        page = browser.new_page(viewport={"width": 1180, "height": 900})
        page.goto(srv.url + "/")
        page.wait_for_selector("#chart svg .point")
        page.fill("#text", SENTENCE)
        page.click("#classify")
        page.wait_for_selector("#results .result")
        page.wait_for_timeout(300)
        page.screenshot(path=str(args.out / "models-page.png"), full_page=True)
        page.goto(srv.url + "/docs")
        page.wait_for_selector(".opblock-summary-path[data-path='/classify']")
        page.screenshot(path=str(args.out / "docs.png"))
        browser.close()
    print(f"{args.out / 'models-page.png'}\n{args.out / 'docs.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
