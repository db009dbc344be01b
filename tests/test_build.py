"""`graphcopy build` and `graphcopy deploy`: from Motoko source to an installed or upgraded canister
with the pinned moc (an enhanced migration chain too), clear errors without Node or the compiler, and
an installed graphcopy (not a checkout) that still builds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
runner = CliRunner()


def gc(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    res = runner.invoke(app, list(args), env=env)
    return res.exit_code, res.stdout, res.stderr


def test_build_writes_what_the_examples_hold(tmp_path: Path, moc: None) -> None:
    out = tmp_path / "out" / "c.wasm"
    (tmp_path / "out").mkdir()
    code, text, err = gc("build", str(EXAMPLES / "counter" / "counter.mo"), "-o", str(out))
    assert code == 0, err
    assert out.read_bytes() == (EXAMPLES / "counter" / "counter.wasm").read_bytes()
    assert (tmp_path / "out" / "c.did").read_text() == (EXAMPLES / "counter" / "counter.did").read_text()
    assert (tmp_path / "out" / "c.most").read_text() == (EXAMPLES / "counter" / "counter.most").read_text()
    assert text.startswith(f"wrote {out} (") and "motoko 4.10.0" in text
    code, text, _ = gc("build", str(EXAMPLES / "counter" / "counter.mo"), "-o", str(out), "--json")
    doc = json.loads(text)
    assert code == 0 and doc["module_hash"] == json.loads(gc("build", str(EXAMPLES / "counter" / "counter.mo"),
                                                              "-o", str(out), "--json")[1])["module_hash"]


def test_deploy_installs_then_upgrades_through_the_plan(sqlite_url: str, moc: None) -> None:
    u = ("--db", sqlite_url)
    code, out, err = gc(*u, "deploy", "hits", str(EXAMPLES / "counter" / "counter.mo"))
    assert code == 0 and "created and installed" in out, err
    gc(*u, "call", "hits", "add", "(3 : nat)")
    code, out, err = gc(*u, "deploy", "hits", str(EXAMPLES / "counter" / "counter_v2.mo"))
    assert code == 0 and "upgrade plan for 'hits'" in out and "path: keep" in out and "upgraded, heap kept" in out
    assert "snapshot" in out  # the same path as `graphcopy upgrade`: a snapshot first
    code, out, _ = gc(*u, "deploy", "hits", str(EXAMPLES / "counter" / "counter_v2.mo"), "--json")
    assert code == 0 and json.loads(out)["action"] == "unchanged"
    code, out, _ = gc(*u, "deploy", "hits", str(EXAMPLES / "counter" / "counter_v2.mo"), "--upgrade-unchanged",
                      "--json")
    assert code == 0 and json.loads(out)["action"] == "upgraded"
    assert gc(*u, "call", "hits", "get")[1] == "(3 : nat)\n"
    code, out, _ = gc(*u, "deploy", "hits", str(EXAMPLES / "counter" / "counter.mo"))  # would drop two variables
    assert code == 1 and "path: refuse" in out
    code, out, _ = gc(*u, "deploy", "hits", str(EXAMPLES / "counter" / "counter.wasm"), "-m", "reinstall", "-y")
    assert code == 0 and "reinstalled" in out and "snapshot" in out


CHAIN_ACTOR = """persistent actor {
  var count : Int;
  var title : Text;
  public func inc() : async Int { count += 1; count };
  public query func name() : async Text { title };
};
"""
FIRST_STEP = """module {
  public func migration(_ : {}) : { count : Int; title : Text } { { count = 10; title = "from the chain" } };
}
"""


def test_deploy_with_an_enhanced_migration_chain(sqlite_url: str, tmp_path: Path, moc: None) -> None:
    (tmp_path / "migrations").mkdir()
    (tmp_path / "main.mo").write_text(CHAIN_ACTOR)
    (tmp_path / "migrations" / "20250101_000000_init.mo").write_text(FIRST_STEP)
    code, out, err = gc("--db", sqlite_url, "deploy", "chain", str(tmp_path / "main.mo"), "--enhanced-migration",
                        str(tmp_path / "migrations"))
    assert code == 0 and "created and installed" in out, err
    assert gc("--db", sqlite_url, "call", "chain", "inc")[1] == "(11 : int)\n"  # the chain ran on install
    assert gc("--db", sqlite_url, "call", "chain", "name")[1] == '("from the chain")\n'
    code, out, _ = gc("build", str(tmp_path / "main.mo"), "--enhanced-migration", str(tmp_path / "migrations"))
    assert code == 0 and (tmp_path / "main.most").read_text().startswith("// Version: 4.0.0")
    code, _, err = gc("build", str(tmp_path / "main.mo"), "--enhanced-migration", str(tmp_path / "none"))
    assert code == 2 and "does not exist" in err


def test_compile_errors_are_moc_s_diagnostics_then_one_line(tmp_path: Path, moc: None) -> None:
    bad = tmp_path / "bad.mo"
    bad.write_text("persistent actor {\n  public func f() : async Nat { \"text\" };\n};\n")
    code, out, err = gc("build", str(bad))
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and lines[-1].startswith("error: moc: 1 error(s) compiling bad.mo")
    assert any(line.startswith("bad.mo:2.") and "type error" in line for line in lines[:-1]), err
    code, out, _ = gc("build", str(bad), "--json")
    doc = json.loads(out)
    assert code == 2 and doc["code"] == 2 and doc["diagnostics"][0]["line"] == 2


def test_without_node_the_error_says_what_to_install(tmp_path: Path) -> None:
    code, out, err = gc("build", str(EXAMPLES / "counter" / "counter.mo"), env={"GRAPHCOPY_NODE": "/no/such/node"})
    assert (code, out) == (1, "") and err.count("\n") == 1
    assert err.startswith("error: cannot compile Motoko here: node is not installed") and "npm ci" in err
    code, _, err = gc("deploy", "x", str(EXAMPLES / "counter" / "counter.mo"),
                      env={"GRAPHCOPY_MOTOKO_DIR": str(tmp_path / "nothing")})
    assert code == 1 and "npm install motoko@4.10.0" in err


def test_an_installed_graphcopy_builds_with_the_project_s_compiler(tmp_path: Path, moc: None) -> None:
    """The package as pip installs it (setuptools build_py of pyproject's packages and package data):
    the moc driver ships with it, and the compiler comes from the project's node_modules."""
    site = tmp_path / "site"
    res = subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py",
                          "--build-lib", str(site)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert (site / "toolchain" / "moc_driver.js").is_file() and (site / "cli" / "build.py").is_file()
    project = tmp_path / "project"
    project.mkdir()
    (project / "main.mo").write_text((EXAMPLES / "counter" / "counter.mo").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHCOPY_")}
    env.update(PYTHONPATH=str(site), GRAPHCOPY_MOC_CACHE=str(tmp_path / "cache"))
    cmd = [sys.executable, "-m", "cli.main", "build", "main.mo"]
    res = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 1 and "npm install motoko@4.10.0" in res.stderr  # no compiler in the project yet
    (project / "node_modules").mkdir()
    (project / "node_modules" / "motoko").symlink_to(ROOT / "node_modules" / "motoko")
    res = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert (project / "main.wasm").read_bytes() == (EXAMPLES / "counter" / "counter.wasm").read_bytes()
