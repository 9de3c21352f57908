"""Provenance in result.json (git commit, dirty flag, library versions) and the one-line notice
when a cached result from another commit is reused (issue #16)."""
import json
from pathlib import Path

from cod_pipeline import provenance as prov
from cod_pipeline.pipeline import run, run_hash


def test_provenance_fields_and_no_git(tmp_path, monkeypatch):
    p = prov.provenance()
    assert set(p) == {"commit", "dirty", "versions"}
    assert set(p["versions"]) == {"torch", "transformers", "pytorch-lightning", "hydra-core", "datasets",
                                  "cod-pipeline"}
    assert p["versions"]["torch"] and p["versions"]["cod-pipeline"]
    if p["commit"] is not None:
        assert len(p["commit"]) == 40 and isinstance(p["dirty"], bool)
    assert prov.git_state(tmp_path) == {"commit": None, "dirty": None}  # not a repository
    monkeypatch.setenv("PATH", str(tmp_path))  # no git at all
    assert prov.git_state() == {"commit": None, "dirty": None}
    assert prov.provenance()["versions"] == p["versions"]


def test_stale_notice():
    now = {"commit": "def5678" + "0" * 33}
    old = {"provenance": {"commit": "abc1234" + "0" * 33}}
    assert prov.stale_notice(old, now) == "reused result from commit abc1234 (now def5678); resume=false recomputes"
    assert prov.stale_notice({"provenance": now}, now) is None
    assert prov.stale_notice(old, {"commit": None}) is None  # no git now: nothing to compare with
    assert "an unrecorded commit" in prov.stale_notice({}, now)


def test_result_records_provenance_and_reuse_from_another_commit_is_noted(tiny_cfg, capsys, monkeypatch):
    cfg = tiny_cfg("k=4", "seed=2")
    monkeypatch.setattr(prov, "git_state", lambda root=None: {"commit": "def5678" + "f" * 33, "dirty": True})
    first = run(cfg)
    saved = json.loads((Path(cfg.paths.output_dir) / "result.json").read_text())
    assert saved["provenance"] == first["provenance"]
    assert saved["provenance"]["commit"].startswith("def5678") and saved["provenance"]["dirty"] is True
    assert saved["provenance"]["versions"]["pytorch-lightning"]
    capsys.readouterr()

    run(cfg)  # same commit: reused silently
    assert "reused result from" not in capsys.readouterr().out

    done = Path(cfg.paths.cache_dir) / "results" / f"{run_hash(cfg)}.json"
    cached = json.loads(done.read_text())
    cached["provenance"]["commit"] = "abc1234" + "e" * 33
    done.write_text(json.dumps(cached))
    again = run(cfg)
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "reused result from" in line]
    assert lines == ["reused result from commit abc1234 (now def5678); resume=false recomputes"]
    assert again["provenance"]["commit"].startswith("abc1234")  # the reused result keeps its own record


def test_teacher_result_has_provenance(tiny_cfg):
    result = run(tiny_cfg("stage=teacher"))
    assert set(result["provenance"]) == {"commit", "dirty", "versions"}
