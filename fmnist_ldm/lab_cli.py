"""python -m fmnist_ldm export-onnx | lab: the command line of the browser lab (export.py writes
its models, lab.py serves its page). cli.py adds these beside its own commands, and its argument
checks (the folders they write) run before either starts."""
from __future__ import annotations

import argparse


def cmd_export_onnx(a):
    from .export import export_onnx
    manifest = export_onnx(a.dir, a.model_dir)
    size = sum(g["bytes"] for g in manifest["graphs"].values())
    print(f"wrote {len(manifest['graphs'])} ONNX graphs (opset {manifest['opset']}, {size / 1e6:.1f} MB) "
          f"and manifest.json to {a.dir}")


def _add_export(sub, model_dir):
    e = sub.add_parser("export-onnx", help="write the UNet, the student, the VAE's decoder and encoder and the "
                                           "judge as ONNX files, with manifest.json (for the browser lab)")
    e.add_argument("dir", help="the folder to write them into")
    e.add_argument("--model-dir", default=str(model_dir))
    e.set_defaults(func=cmd_export_onnx)


def cmd_lab(a):
    from .lab import main as lab
    lab(port=a.port, open_browser=not a.no_browser, build=a.build, model_dir=a.model_dir)


def _port(s):
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a whole number") from None
    if not 0 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535 (0: any free one), not {v}")
    return v


def _add_lab(sub, model_dir):
    b = sub.add_parser("lab", help="the model in a browser page (ONNX Runtime Web): serve it on 127.0.0.1 and "
                                   "open it, or write it as a static site (--build)")
    b.add_argument("--port", type=_port, default=8035, help="the port on 127.0.0.1 (default 8035; 0: any free one)")
    b.add_argument("--no-browser", action="store_true", help="serve, but do not open a browser")
    b.add_argument("--build", metavar="DIR", help="write the static site into DIR and stop")
    b.add_argument("--model-dir", default=str(model_dir))
    b.set_defaults(func=cmd_lab)


def add_parsers(sub, model_dir) -> None:
    _add_export(sub, model_dir)
    _add_lab(sub, model_dir)
