"""Generate Python messages, typing stubs and gRPC stubs for every proto under protos/.

Usage: python scripts/genprotos.py OUTDIR. Output is deterministic so `make protos-check` can diff it.
"""

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"


def main(out_dir: str) -> int:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    well_known = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *protos,
    ]
    rc = protoc.main(args)
    if rc != 0:
        return rc
    # Stub packages are plain packages so tools and importers treat them alike.
    for directory in sorted({p.parent for p in out.rglob("*_pb2.py")}):
        d = directory
        while d != out:
            (d / "__init__.py").touch()
            d = d.parent
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
