"""A page as a user sees it, in headless Chromium driven through its DevTools protocol: open a URL
(or a file), optionally with the network off, run JavaScript in it, take a screenshot. The MLflow
screenshots (`tools.mlflow_screenshots`), the offline DVC plots page and the report page
(tests/test_pages.py, the screenshots in docs/) are taken with it.

`python -m tools.browser PAGE --out PNG [--offline] [--height H]` shoots PAGE (a path or URL) once it
has loaded, at 1600 x H pixels."""

import argparse
import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from websockets.sync.client import connect

from flows.runtime.servers import stop

WIDTH, HEIGHT = 1600, 1000
FLAGS = [  # headless, as root, and no calls out of a closed network (updates, sync, first-run pages)
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAINTED = """[...document.querySelectorAll('canvas')].map(canvas => {
    const alpha = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let count = 0;
    for (let i = 3; i < alpha.length; i += 4) count += alpha[i] > 0;
    return count;
})"""
ANSWER_SECONDS = 60.0  # the longest a DevTools command may take to answer


def chromium():
    """The path of the `chromium` executable; a SystemExit saying how to install it if there is none."""
    found = shutil.which("chromium")
    if found is None:
        raise SystemExit("chromium is not installed: apt-get install -y chromium (bin/setup does, as root)")
    return found


class Page:
    """A DevTools protocol session on one browser page; `call` sends a command and returns its result."""

    def __init__(self, socket):
        self.socket, self.sent = socket, 0

    def call(self, method, **params):
        self.sent += 1
        self.socket.send(json.dumps({"id": self.sent, "method": method, "params": params}))
        while True:  # events of an enabled domain are skipped
            answer = json.loads(self.socket.recv(timeout=ANSWER_SECONDS))
            if answer.get("id") == self.sent:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]

    def evaluate(self, expression):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def offline(self):
        """Cut the page off the network (DevTools' network emulation): a load from any http(s) address fails."""
        self.call("Network.enable")
        self.call("Network.emulateNetworkConditions", offline=True, latency=0, downloadThroughput=-1, uploadThroughput=-1)

    def open(self, url, settle=1.0, timeout=ANSWER_SECONDS):
        """Navigate to `url` and wait for the document to complete, then `settle` seconds for its scripts to draw."""
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while self.evaluate("document.readyState") != "complete" and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(settle)

    def painted(self):
        """The number of painted (not transparent) pixels of each canvas of the page, e.g. each Vega view."""
        return self.evaluate(PAINTED)

    def screenshot(self, path):
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))


def devtools_port(process, profile, timeout=30):
    """The DevTools port the headless Chromium `process` wrote into its `profile` folder."""
    port_file, deadline = Path(profile) / "DevToolsActivePort", time.monotonic() + timeout
    while not (port_file.is_file() and port_file.read_text().strip()):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"headless chromium did not start (exit status {process.poll()})")
        time.sleep(0.1)
    return int(port_file.read_text().split()[0])


@contextmanager
def browser_page(width=WIDTH, height=HEIGHT):
    """A `Page` of a fresh headless Chromium (its own profile, a `width` x `height` viewport), stopped on exit."""
    with tempfile.TemporaryDirectory() as profile:
        command = [chromium(), *FLAGS, "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{devtools_port(process, profile)}/json/list") as answer:
                target = next(each for each in json.load(answer) if each["type"] == "page")
            with connect(target["webSocketDebuggerUrl"], max_size=None) as socket:
                page = Page(socket)
                page.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
                yield page
        finally:
            stop(process)  # and its helper processes, before the profile is removed


def address(page):
    """The URL of `page`: itself if it has a scheme, else the file's."""
    return page if "://" in page else Path(page).resolve().as_uri()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.browser", description=__doc__.split("\n\n")[0])
    parser.add_argument("page", help="a file or a URL")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--offline", action="store_true", help="with the network off")
    parser.add_argument("--height", type=int, default=HEIGHT, help=f"the viewport's height in pixels (default {HEIGHT})")
    args = parser.parse_args(argv)
    with browser_page(height=args.height) as page:
        if args.offline:
            page.offline()
        page.open(address(args.page))
        page.screenshot(args.out)
    print(args.out.resolve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
