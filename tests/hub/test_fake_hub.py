"""The loopback Hub in tests/fake_hub.py, driven by huggingface_hub's real client."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from fake_hub import TEST_TOKEN, FakeHub
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00" + bytes(range(256))


def make_folder(root: Path, seed: int = 0) -> dict[str, bytes]:
    """A model folder like the ones gardener_hf pushes; returns {path in repo: bytes}."""
    files = {
        "config.json": json.dumps({"model_type": "videomae", "num_hidden_layers": 4, "seed": seed}).encode(),
        "README.md": f"---\nlicense: apache-2.0\ntags:\n- pruned\n---\n# Pruned model {seed}\n".encode(),
        "model.safetensors": os.urandom(1024 * 1024),
        "images/block_scores.png": PNG + os.urandom(64),
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_create_repo_private_public_and_exist_ok(fake_hub):
    api = HfApi(endpoint=fake_hub.endpoint, token=TEST_TOKEN)
    url = api.create_repo("tester/private-model", repo_type="model", private=True, exist_ok=True)
    assert url.repo_id == "tester/private-model" and url == f"{fake_hub.endpoint}/tester/private-model"
    for _ in range(2):  # exist_ok: the 409 is swallowed and the repo is left as it was
        again = api.create_repo("tester/private-model", repo_type="model", private=False, exist_ok=True)
        assert again.repo_id == "tester/private-model"
    api.create_repo("tester/public-model", repo_type="model", private=False, exist_ok=True)
    assert fake_hub.repos["tester/private-model"]["private"] is True
    assert fake_hub.repos["tester/public-model"]["private"] is False
    assert fake_hub.repos["tester/public-model"]["branches"] == {"main": {}}
    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo("tester/public-model", repo_type="model")
    assert err.value.response.status_code == 409
    creates = [r for r in fake_hub.requests if r.path == "/api/repos/create"]
    assert len(creates) == 5
    assert all(r.headers["authorization"] == "<redacted:valid>" for r in creates)
    assert api.whoami()["name"] == "fake-user"
    assert api.model_info("tester/public-model").private is False


def test_upload_folder_arrives_byte_for_byte_with_lfs(fake_hub, tmp_path):
    local = make_folder(tmp_path / "model")
    api = HfApi(endpoint=fake_hub.endpoint, token=TEST_TOKEN)
    api.create_repo("tester/m", repo_type="model", private=True, exist_ok=True)
    info = api.upload_folder(folder_path=str(tmp_path / "model"), repo_id="tester/m",
                             commit_message="Upload pruned model (keep 4)")

    repo = fake_hub.repos["tester/m"]
    assert repo["branches"]["main"] == local  # every file, byte for byte, nothing else
    (commit,) = repo["commits"]
    assert commit["message"] == "Upload pruned model (keep 4)"
    assert commit["oid"] == info.oid and info.commit_url.endswith(f"/tester/m/commit/{info.oid}")
    assert commit["revision"] == "main" and commit["pr"] is False and info.pr_url is None
    assert commit["files"] == local
    # The binaries went through the LFS batch API and a PUT of their content; the text files inline (base64).
    lfs = {"model.safetensors", "images/block_scores.png"}
    assert commit["lfs_files"] == {p: sha256(local[p]) for p in lfs}
    assert sorted(commit["regular_files"]) == ["README.md", "config.json"]
    assert sorted(u["oid"] for u in fake_hub.lfs_uploads) == sorted(sha256(local[p]) for p in lfs)
    assert not any(u["authorization_sent"] for u in fake_hub.lfs_uploads)  # token never sent to storage
    puts = [p for p in fake_hub.paths("PUT") if p.startswith("/fake-lfs/tester/m/")]
    assert sorted(p.rsplit("/", 1)[1] for p in puts) == sorted(sha256(local[p]) for p in lfs)
    assert fake_hub.paths("POST").count("/tester/m.git/info/lfs/objects/batch") == 1
    assert fake_hub.paths("POST")[-1] == "/api/models/tester/m/commit/main"
    assert not any("xet" in p for p in fake_hub.paths())
    assert fake_hub.errors == []

    # Same folder again: the client sees identical oids in the preupload answer and makes no commit.
    api.upload_folder(folder_path=str(tmp_path / "model"), repo_id="tester/m", commit_message="no-op")
    assert len(repo["commits"]) == 1

    # Download it back through the real client (HEAD/GET resolve, repo info, tree).
    one = hf_hub_download("tester/m", "images/block_scores.png", endpoint=fake_hub.endpoint, token=TEST_TOKEN,
                          cache_dir=tmp_path / "cache1")
    assert Path(one).read_bytes() == local["images/block_scores.png"]
    snap = Path(snapshot_download("tester/m", endpoint=fake_hub.endpoint, token=TEST_TOKEN,
                                  cache_dir=tmp_path / "cache2"))
    assert {str(p.relative_to(snap)): p.read_bytes() for p in snap.rglob("*") if p.is_file()} == local
    with pytest.raises(RepositoryNotFoundError):  # private repo, no token
        hf_hub_download("tester/m", "config.json", endpoint=fake_hub.endpoint, token=False,
                        cache_dir=tmp_path / "cache3")
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download("tester/m", "missing.bin", endpoint=fake_hub.endpoint, token=TEST_TOKEN,
                        cache_dir=tmp_path / "cache4")


def test_wrong_token_is_rejected_and_nothing_changes(fake_hub, tmp_path):
    make_folder(tmp_path / "model")
    bad = HfApi(endpoint=fake_hub.endpoint, token="hf_wrong_token_456")
    with pytest.raises(HfHubHTTPError) as err:
        bad.create_repo("tester/m", repo_type="model", exist_ok=True)
    assert err.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError):
        bad.whoami()
    HfApi(endpoint=fake_hub.endpoint, token=TEST_TOKEN).create_repo("tester/m")
    with pytest.raises(HfHubHTTPError) as err:
        bad.upload_folder(folder_path=str(tmp_path / "model"), repo_id="tester/m", commit_message="x")
    assert err.value.response.status_code == 401
    assert fake_hub.repos["tester/m"]["commits"] == [] and fake_hub.lfs_uploads == []
    assert list(fake_hub.repos) == ["tester/m"]
    assert not any("hf_wrong_token_456" in json.dumps(r.headers) for r in fake_hub.requests)
    # create_repo (+ its exist_ok fallback to repo_info), whoami, upload_folder: each refused with 401
    assert sum(r.headers.get("authorization") == "<redacted:invalid>" for r in fake_hub.requests) >= 3


def test_unknown_repo_is_404(fake_hub, tmp_path):
    make_folder(tmp_path / "model")
    api = HfApi(endpoint=fake_hub.endpoint, token=TEST_TOKEN)
    with pytest.raises(RepositoryNotFoundError) as err:
        api.upload_folder(folder_path=str(tmp_path / "model"), repo_id="tester/nope", commit_message="x")
    assert err.value.response.status_code == 404
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("tester/nope")


def test_create_pr_opens_refs_pr_n(fake_hub, tmp_path):
    api = HfApi(endpoint=fake_hub.endpoint, token=TEST_TOKEN)
    api.create_repo("tester/m", repo_type="model", exist_ok=True)
    first = make_folder(tmp_path / "v1", seed=1)
    api.upload_folder(folder_path=str(tmp_path / "v1"), repo_id="tester/m", commit_message="v1")
    second = make_folder(tmp_path / "v2", seed=2)
    info = api.upload_folder(folder_path=str(tmp_path / "v2"), repo_id="tester/m", revision=None,
                             create_pr=True, commit_message="v2 as a PR")
    assert info.pr_url == f"{fake_hub.endpoint}/tester/m/discussions/1"
    assert info.pr_revision == "refs/pr/1" and info.pr_num == 1
    repo = fake_hub.repos["tester/m"]
    assert [pr["ref"] for pr in repo["prs"]] == ["refs/pr/1"] and repo["prs"][0]["title"] == "v2 as a PR"
    assert repo["branches"]["main"] == first  # the PR does not touch main
    assert repo["branches"]["refs/pr/1"] == second
    assert repo["commits"][-1]["pr"] is True and repo["commits"][-1]["revision"] == "refs/pr/1"
    assert "/api/models/tester/m/commit/main?create_pr=1" in [r.path for r in fake_hub.requests]
    pr_file = hf_hub_download("tester/m", "config.json", revision="refs/pr/1", endpoint=fake_hub.endpoint,
                              token=TEST_TOKEN, cache_dir=tmp_path / "cache")
    assert Path(pr_file).read_bytes() == second["config.json"]
    refs = api.list_repo_refs("tester/m", include_pull_requests=True)
    assert [r.name for r in refs.pull_requests] == ["refs/pr/1"]


def test_upload_to_a_branch(fake_hub, tmp_path):
    api = HfApi(endpoint=fake_hub.endpoint, token=TEST_TOKEN)
    api.create_repo("tester/m", repo_type="model", exist_ok=True)
    local = make_folder(tmp_path / "model")
    with pytest.raises(RevisionNotFoundError):  # as on the Hub, the branch must exist first
        api.upload_folder(folder_path=str(tmp_path / "model"), repo_id="tester/m", revision="dev",
                          commit_message="to dev")
    api.create_branch("tester/m", branch="dev", exist_ok=True)
    api.create_branch("tester/m", branch="dev", exist_ok=True)
    api.upload_folder(folder_path=str(tmp_path / "model"), repo_id="tester/m", revision="dev",
                      commit_message="to dev")
    repo = fake_hub.repos["tester/m"]
    assert repo["branches"]["dev"] == local and repo["branches"]["main"] == {}
    assert [c["revision"] for c in repo["commits"]] == ["dev"]
    assert sorted(b.name for b in api.list_repo_refs("tester/m").branches) == ["dev", "main"]
    assert sorted(api.list_repo_files("tester/m", revision="dev")) == sorted(local)


def test_multipart_lfs_upload(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    local = make_folder(tmp_path / "model")
    with FakeHub(TEST_TOKEN, multipart_chunk_size=300 * 1024) as hub:
        api = HfApi(endpoint=hub.endpoint, token=TEST_TOKEN)
        api.create_repo("tester/m")
        api.upload_folder(folder_path=str(tmp_path / "model"), repo_id="tester/m", commit_message="mp")
        assert hub.repos["tester/m"]["branches"]["main"] == local
        parts = {u["oid"]: u["parts"] for u in hub.lfs_uploads}
        assert parts[sha256(local["model.safetensors"])] == 4  # ceil(1 MiB / 300 KiB)
        assert parts[sha256(local["images/block_scores.png"])] == 1
    assert hub._server is None


def test_storage_rejects_content_that_does_not_match_its_oid(fake_hub):
    HfApi(endpoint=fake_hub.endpoint, token=TEST_TOKEN).create_repo("tester/m")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    good = b"the real content"

    def call(method, url, body, headers):
        req = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            with opener.open(req, timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    status, body = call("POST", f"{fake_hub.endpoint}/tester/m.git/info/lfs/objects/batch",
                        json.dumps({"operation": "upload", "transfers": ["basic"], "hash_algo": "sha256",
                                    "objects": [{"oid": sha256(good), "size": len(good)}]}).encode(),
                        {"Authorization": f"Bearer {TEST_TOKEN}", "Content-Type": "application/json"})
    assert status == 200
    href = json.loads(body)["objects"][0]["actions"]["upload"]["href"]
    assert href.startswith(fake_hub.endpoint + "/")
    assert call("PUT", href, b"the fake content", {})[0] == 400  # right size, wrong sha256
    assert call("PUT", href.split("?")[0] + "?nonce=guess", good, {})[0] == 403
    assert fake_hub.repos["tester/m"]["lfs_objects"] == {}
    assert call("PUT", href, good, {})[0] == 200
    assert fake_hub.repos["tester/m"]["lfs_objects"] == {sha256(good): good}


def test_env_var_endpoint_in_a_subprocess(fake_hub, tmp_path):
    local = make_folder(tmp_path / "model")
    code = textwrap.dedent(f"""
        import json
        from huggingface_hub import HfApi, constants, hf_hub_download
        api = HfApi()  # endpoint and token from HF_ENDPOINT / HF_TOKEN only
        user = api.whoami()["name"]
        url = api.create_repo(user + "/env-model", private=True, exist_ok=True)
        info = api.upload_folder(folder_path={str(tmp_path / "model")!r}, repo_id=url.repo_id,
                                 commit_message="via env")
        back = hf_hub_download(url.repo_id, "model.safetensors", cache_dir={str(tmp_path / "cache")!r})
        print(json.dumps({{"endpoint": constants.ENDPOINT, "repo": url.repo_id, "oid": info.oid,
                          "back": open(back, "rb").read().hex()}}))
    """)
    env = {**os.environ, **fake_hub.env()}
    env.pop("HF_HOME", None)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                            cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["endpoint"] == fake_hub.endpoint and out["repo"] == "fake-user/env-model"
    repo = fake_hub.repos["fake-user/env-model"]
    assert repo["private"] is True and repo["branches"]["main"] == local
    assert repo["commits"][0]["message"] == "via env" and repo["commits"][0]["oid"] == out["oid"]
    assert bytes.fromhex(out["back"]) == local["model.safetensors"]
    assert TEST_TOKEN not in result.stdout + result.stderr
