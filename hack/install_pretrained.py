"""Install a trained .pdparams as kslim://pretrained/<name>: copy it into the runner package and
record its SHA-256 in kslim_api.pretrained (the runner checks it before loading).

    python hack/install_pretrained.py <weights.pdparams> <name>

`make quickstart-weights` runs the training job and then this.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = ROOT / "api" / "kslim_api" / "pretrained.py"
PACKAGE = ROOT / "runner" / "kslim_runner" / "pretrained"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    source, name = Path(argv[0]), argv[1]
    if not source.is_file():
        print(f"install_pretrained: {source} not found (did the training job finish?)", file=sys.stderr)
        return 2
    text = REGISTRY.read_text()
    entry = re.compile(rf'(name="{re.escape(name)}",.*?sha256=")([0-9a-f]{{64}})(")', re.DOTALL)
    if not entry.search(text):
        print(f"install_pretrained: no entry named {name!r} in {REGISTRY.relative_to(ROOT)}", file=sys.stderr)
        return 2
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    shutil.copyfile(source, PACKAGE / f"{name}.pdparams")
    REGISTRY.write_text(entry.sub(rf"\g<1>{digest}\g<3>", text, count=1))
    print(f"installed kslim://pretrained/{name} ({source.stat().st_size} bytes, sha256 {digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
