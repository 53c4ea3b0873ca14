"""The TypeScript compiler's parser as a long-lived helper process (tests/typescript/check_stub.mjs)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

CHECKER = Path(__file__).resolve().parent / "typescript" / "check_stub.mjs"


class TypeScriptParser:
    def __init__(self):
        if shutil.which("node") is None or not (CHECKER.parent / "node_modules" / "typescript").exists():
            pytest.fail("the TypeScript parser is not installed: run `make install` (npm ci in tests/typescript)")
        self.proc = subprocess.Popen(["node", str(CHECKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def parse(self, code: str) -> dict:
        self.proc.stdin.write(json.dumps({"code": code}) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(10)
