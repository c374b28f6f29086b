"""The lab: the shipped model in a browser page (lab/), run by ONNX Runtime Web's WASM backend, no
install and no kernel. `python -m fmnist_ldm lab` builds the site and serves it on 127.0.0.1;
`--build DIR` writes it as static files for any web server.

The site: lab/'s files (HTML and JavaScript modules), models/ (the ONNX graphs and manifest.json
that export.py writes, cached per weights) and ort/ (three files of the pinned onnxruntime-web).

Where ONNX Runtime Web comes from (no Node.js needed): the folder $FMNIST_ORT_WEB names (a `dist/`
of the npm package, what .ci/run installs with npm), else a cache folder, else the package's
tarball from the npm registry, downloaded once by Python and checked against the registry's
sha512 pinned here. Whatever the source, each of the three files must have the sha256 pinned
here, so the page runs exactly the runtime it was tested with.

Multi-threaded WASM needs a cross-origin isolated page: the server sends COOP/COEP headers
(`Cross-Origin-Opener-Policy: same-origin`, `Cross-Origin-Embedder-Policy: require-corp`); a static
host without them still runs the page, on one thread."""
from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import io
import os
import shutil
import tarfile
import threading
import urllib.request
from pathlib import Path

ORT_WEB_VERSION = "1.31.1"
ORT_WEB_TARBALL = f"https://registry.npmjs.org/onnxruntime-web/-/onnxruntime-web-{ORT_WEB_VERSION}.tgz"
ORT_WEB_SHA512 = "5GeH+bWQ+HxM10z7erGlsWqryrwMbSvm/1tkIsKTT48g0fI19VXVVC435t4t7VsPdSQeS7NmuZPXrQ73k82URw=="  # npm's dist.integrity
ORT_WEB_FILES = {   # what the page loads (WASM backend only), and their sha256
    "ort.wasm.min.mjs": "c21d9c326d453a4a61398270c804d5979e118540597cb0c07f7b3d64e6098234",
    "ort-wasm-simd-threaded.mjs": "30ed0b5cd1182ede931fea448afb567d4dc705ec957af09f108a2be5f770dac3",
    "ort-wasm-simd-threaded.wasm": "4b884c203b0fa48d057be3332c65513ff85aa3c5bddd6946acc0fab7ecda001d",
}
ORT_ENV = "FMNIST_ORT_WEB"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fmnist_ldm"
PAGE_FILES = ("index.html", "lab.js", "samplers.js", "rng.js", "decoder-worker.js", "lab.css")
HEADERS = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp",
           "Cache-Control": "no-cache"}


class LabError(ValueError):
    pass


def page_dir() -> Path:
    """The page: lab/ beside the package in a checkout (or an editable install), fmnist_ldm/lab_page/
    inside an installed wheel, which carries it as package data (as it carries the weights)."""
    here = Path(__file__).resolve().parent
    for d in (here.parent / "lab", here / "lab_page"):
        if (d / "index.html").is_file():
            return d
    raise LabError(f"the lab's page is neither at {here.parent / 'lab'} nor at {here / 'lab_page'}: "
                   "reinstall fmnist_ldm, or run this from a checkout of the repository")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _checked(folder: Path) -> bool:
    """Whether folder holds the three pinned files, each with its pinned sha256."""
    return all((folder / f).is_file() and _sha256(folder / f) == h for f, h in ORT_WEB_FILES.items())


def ort_web_dir(download: bool = True) -> Path:
    """A folder with the pinned onnxruntime-web files, each checked (see the module docstring)."""
    if given := os.environ.get(ORT_ENV):
        if not _checked(Path(given)):
            raise LabError(f"${ORT_ENV}={given} does not hold onnxruntime-web {ORT_WEB_VERSION}'s "
                           f"{', '.join(ORT_WEB_FILES)} with the pinned hashes (fmnist_ldm/lab.py)")
        return Path(given)
    cached = CACHE / f"onnxruntime-web-{ORT_WEB_VERSION}"
    if _checked(cached):
        return cached
    if not download:
        raise LabError(f"onnxruntime-web {ORT_WEB_VERSION} is not in {cached}")
    print(f"fetching onnxruntime-web {ORT_WEB_VERSION} from the npm registry (once; 35 MB) ...", flush=True)
    try:
        with urllib.request.urlopen(ORT_WEB_TARBALL, timeout=120) as r:
            data = r.read()
    except OSError as e:
        raise LabError(f"cannot download {ORT_WEB_TARBALL} ({e}); offline, set ${ORT_ENV} to the dist/ "
                       f"folder of `npm install onnxruntime-web@{ORT_WEB_VERSION}`") from None
    if base64.b64encode(hashlib.sha512(data).digest()).decode() != ORT_WEB_SHA512:
        raise LabError(f"{ORT_WEB_TARBALL} does not have the pinned sha512: not the tested release")
    tmp = cached.with_name(cached.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for name in ORT_WEB_FILES:
            (tmp / name).write_bytes(tar.extractfile(f"package/dist/{name}").read())
    if not _checked(tmp):
        raise LabError(f"the files in {ORT_WEB_TARBALL} do not have the pinned sha256")
    shutil.rmtree(cached, ignore_errors=True)
    tmp.rename(cached)
    return cached


def models_dir(model_dir=None) -> Path:
    """The ONNX graphs of the weights in model_dir (default: the shipped ones), exported once per
    weights and exporter (cached under a hash of both)."""
    from . import export
    from .weights import MODEL_DIR
    model_dir = Path(model_dir or MODEL_DIR)
    h = hashlib.sha256(Path(export.__file__).read_bytes())
    for name in ("unet", "vae", "student", "judge"):
        h.update(_sha256(model_dir / f"{name}.safetensors").encode())
    out = CACHE / "lab" / f"models-{h.hexdigest()[:16]}"
    if not (out / export.MANIFEST).is_file():
        print(f"exporting the models to ONNX (once) into {out} ...", flush=True)
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        export.export_onnx(tmp, model_dir)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    return out


def build_site(out_dir, model_dir=None) -> Path:
    """Write the static site into out_dir: the page, models/ and ort/. Returns out_dir."""
    out_dir = Path(out_dir)
    page, models, ort = page_dir(), models_dir(model_dir), ort_web_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in PAGE_FILES:
        shutil.copy2(page / name, out_dir / name)
    for sub, src, names in (("models", models, sorted(p.name for p in models.iterdir())),
                            ("ort", ort, list(ORT_WEB_FILES))):
        (out_dir / sub).mkdir(exist_ok=True)
        for name in names:
            shutil.copy2(src / name, out_dir / sub / name)
    return out_dir


class Handler(http.server.SimpleHTTPRequestHandler):
    """Static files with the headers cross-origin isolation needs and the right MIME types."""
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript",
                      ".js": "text/javascript", ".wasm": "application/wasm", ".onnx": "application/octet-stream",
                      ".json": "application/json"}

    def end_headers(self):
        for k, v in HEADERS.items():
            self.send_header(k, v)
        super().end_headers()

    def log_message(self, *args):          # quiet: a page load is a dozen requests
        pass


def server(site: Path, port: int = 0) -> http.server.ThreadingHTTPServer:
    """A server of `site` on 127.0.0.1:port (0: a free port), not yet serving."""
    return http.server.ThreadingHTTPServer(("127.0.0.1", port), functools.partial(Handler, directory=str(site)))


def serve_in_thread(site: Path, port: int = 0):
    """(server, url) serving `site` from a daemon thread (for tests and benchmarks)."""
    srv = server(site, port)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}/"


def main(port: int = 8035, open_browser: bool = True, build=None, model_dir=None) -> None:
    """The `lab` command: write the site (to `build`, and stop), or serve it and open the browser."""
    if build is not None:
        site = build_site(build, model_dir)
        size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
        print(f"wrote the lab to {site} ({size / 1e6:.1f} MB); serve it with COOP/COEP headers for "
              "multi-threaded WASM (see fmnist_ldm/lab.py)")
        return
    site = build_site(CACHE / "lab" / "site", model_dir)
    try:
        srv = server(site, port)
    except OSError as e:
        raise LabError(f"cannot serve on 127.0.0.1:{port} ({e.strerror}); choose another --port") from None
    url = f"http://127.0.0.1:{srv.server_address[1]}/"
    print(f"the lab: {url}  (Ctrl+C to stop)", flush=True)
    if open_browser:
        import webbrowser
        threading.Timer(0.5, webbrowser.open, (url,)).start()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
