"""The pip pins, the lock and the conda file describe one environment."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)\s*(===|==)\s*([^\s;#]+)")


def parse_pins(lines) -> dict[str, tuple[str, str]]:
    pins = {}
    for line in lines:
        m = PIN.match(line.strip())
        if m:
            pins[m.group(1).lower().replace("_", "-")] = (m.group(2), m.group(3))
    return pins


def requirements() -> dict:
    return parse_pins((REPO / "requirements.txt").read_text().splitlines())


def test_every_requirement_is_exactly_pinned():
    lines = [l for l in (REPO / "requirements.txt").read_text().splitlines() if l.strip() and not l.startswith("#")]
    pins = requirements()
    assert len(pins) == len(lines), "a requirement without an exact pin"
    # The local '+cpu' wheel trap: torch and torchvision must use the arbitrary-equality operator.
    assert pins["torch"][0] == "===" and pins["torchvision"][0] == "==="


def test_environment_yml_matches_requirements():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert parse_pins(pip_section) == requirements()
    assert any(str(d).startswith("python=3.11") for d in env["dependencies"])


def test_lock_agrees_with_requirements():
    lock = parse_pins((REPO / "constraints.txt").read_text().splitlines())
    for name, (op, version) in requirements().items():
        assert name in lock, f"{name} missing from constraints.txt (run `make lock`)"
        assert lock[name][1] == version, f"{name}: requirements {version} != lock {lock[name][1]}"
