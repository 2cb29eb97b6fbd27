"""A minimal loopback emulation of the Hugging Face Hub HTTP API, for offline tests.

`FakeHub` serves, on 127.0.0.1 only, the endpoints that huggingface_hub's real client (written against
huggingface_hub 2.4) calls for

- `HfApi.whoami`                     GET  /api/whoami-v2
- `HfApi.create_repo`                POST /api/repos/create            (409 when it exists -> `exist_ok=True` works)
- `HfApi.delete_repo`                DELETE /api/repos/delete
- `HfApi.create_branch` / `delete_branch`  POST|DELETE /api/models/{repo}/branch/{branch}
- `HfApi.list_repo_refs`             GET  /api/models/{repo}/refs
- `HfApi.repo_info` / `model_info`   GET  /api/models/{repo}[/revision/{rev}]
- `HfApi.list_repo_tree` / `list_repo_files`   GET /api/models/{repo}/tree/{rev}[/{path}]
- `HfApi.create_commit` / `upload_folder` / `upload_file`:
    POST /api/validate-yaml                       (README.md metadata check, always valid)
    POST /api/models/{repo}/preupload/{rev}       (decides "regular" vs "lfs" per file)
    POST /{repo}.git/info/lfs/objects/batch       (git-lfs batch API, "basic" transfer; "multipart" on demand)
    PUT  /fake-lfs/{repo}/{oid}?nonce=...         (the "presigned" storage URL; content checked against
                                                   its sha256 oid and size; no Authorization expected)
    PUT  /fake-lfs/{repo}/{oid}/part/{n}?nonce=...  + POST /fake-lfs/{repo}/{oid}?nonce=...  (multipart)
    POST /{repo}.git/info/lfs/objects/verify
    POST /api/models/{repo}/commit/{rev}          (NDJSON: header, file (base64), lfsFile, deletedFile,
                                                   deletedFolder; `?create_pr=1` opens refs/pr/N)
- `hf_hub_download` / `snapshot_download`:  HEAD|GET /{repo}/resolve/{rev}/{path}  (ETag, X-Repo-Commit,
  X-Linked-Etag/X-Linked-Size for LFS files, Content-Length, Range)

Only model repos are emulated. Any namespace may be written to with the expected token.

Xet: huggingface_hub 2.4 decides client-side, in `utils._runtime.is_xet_available()`, whether to upload with
Xet: it does so whenever the `hf_xet` package is importable and `constants.HF_HUB_DISABLE_XET` is false. No
server response can steer it back to LFS (`_commit_api._upload_files` and `HfApi.upload_folder`, which then
switches to `_upload_pipeline.pipelined_upload`, never ask the server). So the `fake_hub` fixture sets
`huggingface_hub.constants.HF_HUB_DISABLE_XET = True` for this process and `HF_HUB_DISABLE_XET=1` in the
environment (inherited by subprocesses; `FakeHub.env()` builds a complete environment for them). The server never
advertises Xet (no X-Xet-* headers, LFS batch `transfer` is "basic"/"multipart") and answers the
`xet-write-token`/`xet-read-token` endpoints with a 400 that says to set HF_HUB_DISABLE_XET=1.

Boundedness: the server never answers 429 or 5xx (the client retries those with back-off, up to ~25 s),
unexpected handler errors become 400s recorded in `FakeHub.errors`, request bodies are capped, idle
keep-alive connections time out, and `stop()` / context exit shuts the server and its connections down.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import http.server
import json
import secrets
import socket
import threading
import traceback
from typing import Any, NamedTuple
from urllib.parse import parse_qs, quote, unquote, urlsplit

TEST_TOKEN = "hf_test_token_123"  # not a real token
_INVALID_CREDENTIALS = "Invalid credentials in Authorization header"  # the Hub's exact message
_EPOCH = "2024-01-01T00:00:00.000Z"

# Patterns of the Hub's default .gitattributes (files stored with LFS even when they look like text).
_LFS_PATTERNS = (
    "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib", "*.lfs", "*.mlmodel",
    "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet", "*.pb", "*.pickle", "*.pkl", "*.pt",
    "*.pth", "*.rar", "*.safetensors", "saved_model/*", "*.tar.*", "*.tar", "*.tflite", "*.tgz", "*.wasm", "*.xz",
    "*.zip", "*.zst", "*tfevents*",
)
_LFS_SIZE_THRESHOLD = 10 * 1024 * 1024  # the Hub stores files above 10 MB with LFS


class Request(NamedTuple):
    """One request the server received. `headers` has lower-case names and no secret: an Authorization
    header is replaced by "<redacted:valid>" or "<redacted:invalid>"."""

    method: str
    path: str
    headers: dict


class _HttpError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None,
                 body: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}
        self.body = body or {}


class _Response(NamedTuple):
    status: int
    body: bytes
    headers: dict


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(oid: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()


def _is_binary(sample: bytes) -> bool:
    if b"\x00" in sample:
        return True
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as err:
        return err.start < len(sample) - 3  # a multi-byte character cut by the 512-byte sample is still text
    return False


def _json(obj: Any, status: int = 200, headers: dict | None = None) -> _Response:
    return _Response(status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})})


def _check_path(path: Any) -> str:
    if not isinstance(path, str) or not path or path.startswith("/") or any(
        part in ("", ".", "..", ".git") for part in path.split("/")
    ):
        raise _HttpError(400, f"Invalid path in repo: {path!r}")
    return path


class FakeHub:
    """Loopback Hub emulation. Use as a context manager (or `start()` / `stop()`).

    Attributes (read them from tests; guarded by `lock` while the server runs):
        endpoint:  "http://127.0.0.1:PORT"
        repos:     repo_id -> {"private": bool,
                               "branches": {branch: {path: bytes}},   # PR refs are branches "refs/pr/N"
                               "prs": [{"num", "ref", "base", "title", "url", "commit"}],
                               "commits": [{"oid", "parent", "message", "description", "revision",
                                            "base_revision", "pr", "pr_num", "files": {path: bytes},
                                            "lfs_files": {path: sha256}, "regular_files": [path],
                                            "deleted": [path]}],
                               ...internal keys: "heads", "snapshots", "lfs_objects", "initial_commit"}
                   (the initial empty commit made by create_repo is not listed in "commits")
        requests:  [Request(method, path_with_query, headers_without_secrets)]
        lfs_uploads: [{"repo_id", "oid", "size", "parts", "authorization_sent"}], one per stored LFS object
        errors:    tracebacks of unexpected handler failures (answered with 400; should stay empty)
        fail:      set by a test: {step: status or "drop"} makes that step of a push fail (`STEPS`)
    """

    def __init__(
        self,
        token: str = TEST_TOKEN,
        *,
        user: str = "fake-user",
        multipart_chunk_size: int | None = None,
        max_body_bytes: int = 512 * 1024 * 1024,
        anonymous_reads: bool = True,
    ):
        self.token = token
        self.user = user
        self.multipart_chunk_size = multipart_chunk_size  # LFS objects larger than this go multipart
        self.max_body_bytes = max_body_bytes
        self.anonymous_reads = anonymous_reads  # public repos readable without a token, as on the Hub
        self.repos: dict[str, dict] = {}
        self.requests: list[Request] = []
        self.lfs_uploads: list[dict] = []
        self.errors: list[str] = []
        self.fail: dict[str, int | str] = {}  # step -> HTTP status to answer, or "drop" (see STEPS)
        self.failed: list[str] = []  # steps that were made to fail, in order
        self.lock = threading.RLock()
        self._pending: dict[tuple[str, str], dict] = {}  # (repo_id, oid) -> {"nonce", "size", "parts"}
        self._counter = 0
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self.endpoint = ""

    #: the steps of a push, as `fail` names them
    STEPS = ("whoami", "create_repo", "preupload", "lfs_batch", "storage", "commit")

    def step_of(self, method: str, raw_path: str) -> str | None:
        """Which step of a push a request belongs to (see `fail`), or None."""
        path = urlsplit(raw_path).path
        if path.startswith("/api/whoami"):
            return "whoami"
        if method == "POST" and path == "/api/repos/create":
            return "create_repo"
        if method == "POST" and "/preupload/" in path:
            return "preupload"
        if method == "POST" and path.endswith("/info/lfs/objects/batch"):
            return "lfs_batch"
        if method == "PUT" and path.startswith("/fake-lfs/"):
            return "storage"
        if method == "POST" and "/commit/" in path:
            return "commit"
        return None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        host, port = server.server_address[:2]
        self.endpoint = f"http://{host}:{port}"
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="FakeHub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self.lock:
            conns = list(self._conns)
        for conn in conns:  # idle keep-alive connections would otherwise linger until their timeout
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ helpers for tests
    def env(self, token: str | None = None, **extra: str) -> dict:
        """Environment variables that point a huggingface_hub subprocess at this server (merge into os.environ).
        HF_ENDPOINT and HF_HUB_OFFLINE/HF_HUB_DISABLE_XET are read by huggingface_hub at import time."""
        return {"HF_ENDPOINT": self.endpoint, "HF_TOKEN": self.token if token is None else token,
                "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0", "HF_HUB_DISABLE_XET": "1",
                "HF_HUB_DISABLE_TELEMETRY": "1", **extra}

    def file(self, repo_id: str, path: str, revision: str = "main") -> bytes:
        with self.lock:
            return self.repos[repo_id]["branches"][revision][path]

    def paths(self, method: str | None = None) -> list[str]:
        """Paths (without query) of the recorded requests, optionally of one method only."""
        return [r.path.split("?")[0] for r in self.requests if method is None or r.method == method]

    # ------------------------------------------------------------------ state helpers
    def _new_oid(self, *parts: Any) -> str:
        self._counter += 1
        return hashlib.sha1(json.dumps([self._counter, *map(str, parts)]).encode()).hexdigest()

    def _repo(self, repo_id: str, auth: str | None, write: bool = False) -> dict:
        repo = self.repos.get(repo_id)
        if repo is None or (repo["private"] and auth != "valid"):
            raise _HttpError(404 if auth == "valid" else 401, "Repository not found", "RepoNotFound")
        if write and auth != "valid":
            raise _HttpError(401, "You must be authenticated to write to this repository", "RepoNotFound")
        return repo

    @staticmethod
    def _resolve(repo: dict, rev: str) -> tuple[str | None, str]:
        """(branch or None, commit oid) for a branch name, refs/heads/..., refs/pr/N or a commit oid."""
        branch = rev.removeprefix("refs/heads/")
        if branch in repo["heads"]:
            return branch, repo["heads"][branch]
        if rev in repo["snapshots"]:
            return None, rev
        raise _HttpError(404, f"Invalid rev id: {rev}", "RevisionNotFound")

    def _entry(self, snap: dict, path: str) -> dict:
        data = snap["files"][path]
        oid = snap["lfs"].get(path)
        if oid is None:
            return {"type": "file", "oid": git_blob_sha1(data), "size": len(data), "path": path}
        pointer = lfs_pointer(oid, len(data))
        return {"type": "file", "oid": git_blob_sha1(pointer), "size": len(data), "path": path,
                "lfs": {"oid": oid, "size": len(data), "pointerSize": len(pointer)}}

    def _etag(self, snap: dict, path: str) -> str:
        return snap["lfs"].get(path) or git_blob_sha1(snap["files"][path])

    # ------------------------------------------------------------------ dispatch
    def _handle(self, method: str, raw_path: str, headers: dict, body: bytes) -> _Response:
        split = urlsplit(raw_path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        segs = split.path.split("/")[1:]
        auth = headers.get("authorization")
        auth_state = None if auth is None else ("valid" if auth == f"Bearer {self.token}" else "invalid")

        # Storage URLs (the Hub's presigned S3 URLs) ignore Authorization; everything else checks it.
        if segs[:1] == ["fake-lfs"]:
            return self._storage(method, segs[1:], query, body, auth is not None)
        if auth_state == "invalid":
            raise _HttpError(401, _INVALID_CREDENTIALS, headers={"X-Error-Message": _INVALID_CREDENTIALS})

        if segs[:1] == ["api"]:
            return self._api(method, segs[1:], query, headers, body, auth_state)
        if len(segs) >= 2 and segs[1].endswith(".git"):
            repo_id = f"{unquote(segs[0])}/{unquote(segs[1][:-4])}"
            rest = "/".join(segs[2:])
            if method == "POST" and rest == "info/lfs/objects/batch":
                return self._lfs_batch(repo_id, body, auth_state)
            if method == "POST" and rest == "info/lfs/objects/verify":
                return self._lfs_verify(repo_id, body, auth_state)
        if len(segs) >= 5 and segs[2] == "resolve" and method in ("GET", "HEAD"):
            repo_id = f"{unquote(segs[0])}/{unquote(segs[1])}"
            path = unquote("/".join(segs[4:]))
            return self._resolve_file(repo_id, unquote(segs[3]), path, headers, auth_state)
        raise _HttpError(404, f"FakeHub does not emulate {method} {split.path}")

    def _api(self, method, segs, query, headers, body, auth) -> _Response:
        if segs == ["whoami-v2"] and method == "GET":
            if auth != "valid":
                raise _HttpError(401, "Invalid user token")
            return _json({"type": "user", "id": "0" * 24, "name": self.user, "fullname": "Fake Hub User",
                          "email": None, "emailVerified": True, "isPro": False, "orgs": [],
                          "auth": {"type": "access_token",
                                   "accessToken": {"displayName": "fake-hub", "role": "write"}}})
        if segs == ["validate-yaml"] and method == "POST":
            return _json({"errors": [], "warnings": []})
        if segs == ["repos", "create"] and method == "POST":
            return self._create_repo(json.loads(body or b"{}"), auth)
        if segs == ["repos", "delete"] and method == "DELETE":
            payload = json.loads(body or b"{}")
            repo_id = f"{payload.get('organization') or self.user}/{payload.get('name')}"
            self._repo(repo_id, auth, write=True)
            del self.repos[repo_id]
            return _json({})
        if len(segs) >= 3 and segs[0] in ("datasets", "spaces", "kernels"):
            raise _HttpError(404, "FakeHub only emulates model repos", "RepoNotFound")
        if len(segs) < 3 or segs[0] != "models":
            raise _HttpError(404, f"FakeHub does not emulate {method} /api/{'/'.join(segs)}")
        repo_id = f"{unquote(segs[1])}/{unquote(segs[2])}"
        action, args = (segs[3] if len(segs) > 3 else None), [unquote(s) for s in segs[4:]]

        if action is None and method == "GET":
            return self._repo_info(repo_id, "main", query, auth)
        if action == "revision" and len(args) == 1 and method == "GET":
            return self._repo_info(repo_id, args[0], query, auth)
        if action == "refs" and method == "GET":
            return self._refs(repo_id, query, auth)
        if action == "tree" and args and method == "GET":
            return self._tree(repo_id, args[0], "/".join(args[1:]), query, auth)
        if action == "branch" and len(args) == 1 and method in ("POST", "DELETE"):
            return self._branch(method, repo_id, args[0], json.loads(body or b"{}"), auth)
        if action == "preupload" and len(args) == 1 and method == "POST":
            return self._preupload(repo_id, args[0], query, json.loads(body or b"{}"), auth)
        if action == "commit" and len(args) == 1 and method == "POST":
            return self._commit(repo_id, args[0], query, body, auth)
        if action == "discussions" and not args and method == "GET":
            # pull requests only (the fake has no plain discussions); a test may set a PR's "author"
            repo = self._repo(repo_id, auth)
            items = [{"num": pr["num"], "title": pr["title"], "status": pr.get("status", "open"),
                      "author": {"name": pr.get("author", self.user)}, "createdAt": "2026-01-01T00:00:00.000Z",
                      "repo": {"name": repo_id, "type": "model"}, "isPullRequest": True}
                     for pr in repo["prs"]
                     if query.get("status") in (None, "all", pr.get("status", "open"))
                     and query.get("author") in (None, pr.get("author", self.user))]
            return _json({"discussions": items, "count": len(items), "start": 0, "numClosedDiscussions": 0})
        if action in ("xet-write-token", "xet-read-token"):
            raise _HttpError(400, "FakeHub does not emulate Xet storage: set HF_HUB_DISABLE_XET=1 "
                                  "(huggingface_hub.constants.HF_HUB_DISABLE_XET = True) to upload through LFS")
        raise _HttpError(404, f"FakeHub does not emulate {method} /api/{'/'.join(segs)}")

    # ------------------------------------------------------------------ repos, branches, info
    def _create_repo(self, payload: dict, auth) -> _Response:
        if auth != "valid":
            raise _HttpError(401, "You must be authenticated to create a repository")
        if payload.get("type", "model") != "model":
            raise _HttpError(400, "FakeHub only emulates model repos")
        name = payload.get("name")
        if not isinstance(name, str) or not name or "/" in name:
            raise _HttpError(400, f"Invalid repo name: {name!r}")
        repo_id = f"{payload.get('organization') or self.user}/{name}"
        url = f"{self.endpoint}/{repo_id}"
        if repo_id in self.repos:
            # the client reads "url" from this 409 body when exist_ok=True
            raise _HttpError(409, "You already created this model repo", body={"url": url})
        visibility = payload.get("visibility")
        private = visibility == "private" if visibility is not None else bool(payload.get("private", False))
        initial = self._new_oid(repo_id, "initial commit")
        self.repos[repo_id] = {
            "private": private, "branches": {"main": {}}, "prs": [], "commits": [],
            "heads": {"main": initial}, "snapshots": {initial: {"files": {}, "lfs": {}}},
            "lfs_objects": {}, "initial_commit": initial,
        }
        return _json({"url": url, "name": repo_id, "id": repo_id})

    def _repo_info(self, repo_id, rev, query, auth) -> _Response:
        repo = self._repo(repo_id, auth)
        _, oid = self._resolve(repo, rev)
        snap = repo["snapshots"][oid]
        siblings = []
        for path in sorted(snap["files"]):
            sibling: dict = {"rfilename": path}
            if query.get("blobs") in ("True", "true", "1"):
                entry = self._entry(snap, path)
                sibling.update(size=entry["size"], blobId=entry["oid"])
                if "lfs" in entry:
                    sibling["lfs"] = {"size": entry["size"], "sha256": entry["lfs"]["oid"],
                                      "pointerSize": entry["lfs"]["pointerSize"]}
            siblings.append(sibling)
        return _json({"_id": "0" * 24, "id": repo_id, "modelId": repo_id, "author": repo_id.split("/")[0],
                      "sha": oid, "private": repo["private"], "gated": False, "disabled": False, "downloads": 0,
                      "likes": 0, "tags": [], "siblings": siblings, "lastModified": _EPOCH, "createdAt": _EPOCH})

    def _refs(self, repo_id, query, auth) -> _Response:
        repo = self._repo(repo_id, auth)
        branches = [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": oid}
                    for b, oid in repo["heads"].items() if not b.startswith("refs/")]
        out: dict = {"branches": branches, "converts": [], "tags": []}
        if query.get("include_prs"):
            out["pullRequests"] = [{"name": b, "ref": b, "targetCommit": oid}
                                   for b, oid in repo["heads"].items() if b.startswith("refs/pr/")]
        return _json(out)

    def _branch(self, method, repo_id, branch, payload, auth) -> _Response:
        repo = self._repo(repo_id, auth, write=True)
        if branch.startswith("refs/"):
            raise _HttpError(400, f"Invalid branch name: {branch}")
        if method == "DELETE":
            if branch not in repo["heads"] or branch == "main":
                raise _HttpError(404 if branch != "main" else 403, f"Cannot delete branch {branch}",
                                 "RevisionNotFound" if branch != "main" else None)
            del repo["heads"][branch], repo["branches"][branch]
            return _json({})
        if branch in repo["heads"]:
            raise _HttpError(409, f"Reference already exists: refs/heads/{branch}")
        _, oid = self._resolve(repo, payload.get("startingPoint") or "main")
        repo["heads"][branch] = oid
        repo["branches"][branch] = dict(repo["snapshots"][oid]["files"])
        return _json({})

    def _tree(self, repo_id, rev, path, query, auth) -> _Response:
        repo = self._repo(repo_id, auth)
        _, oid = self._resolve(repo, rev)
        snap = repo["snapshots"][oid]
        recursive = query.get("recursive") in ("True", "true", "1")
        prefix = f"{path}/" if path else ""
        if path and path in snap["files"]:
            return _json([self._entry(snap, path)])
        entries, dirs = [], set()
        for p in sorted(snap["files"]):
            if not p.startswith(prefix):
                continue
            parts = p[len(prefix):].split("/")
            for i in range(1, len(parts) if recursive else min(2, len(parts))):
                dirs.add(prefix + "/".join(parts[:i]))
            if recursive or len(parts) == 1:
                entries.append(self._entry(snap, p))
        if path and not entries and not dirs:
            raise _HttpError(404, f"{path} does not exist on {rev}", "EntryNotFound")
        folders = [{"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0, "path": d}
                   for d in sorted(dirs)]
        return _json(folders + entries)

    # ------------------------------------------------------------------ upload protocol
    def _preupload(self, repo_id, rev, query, payload, auth) -> _Response:
        repo = self._repo(repo_id, auth, write=True)
        _, oid = self._resolve(repo, rev)
        snap = repo["snapshots"][oid]
        out = []
        for f in payload.get("files", []):
            path = _check_path(f.get("path"))
            try:
                sample = base64.b64decode(f.get("sample", ""), validate=True)
            except (binascii.Error, ValueError):
                raise _HttpError(400, f"Invalid sample for {path}") from None
            size = f.get("size")
            if not isinstance(size, int) or size < 0:
                raise _HttpError(400, f"Invalid size for {path}")
            lfs = (size >= _LFS_SIZE_THRESHOLD or _is_binary(sample)
                   or any(fnmatch.fnmatch(path, pat) or fnmatch.fnmatch(path.rsplit("/", 1)[-1], pat)
                          for pat in _LFS_PATTERNS))
            remote = self._etag(snap, path) if path in snap["files"] else None
            out.append({"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                        "oid": remote})
        return _json({"files": out, "commitOid": oid})

    def _lfs_batch(self, repo_id, body, auth) -> _Response:
        repo = self._repo(repo_id, auth, write=True)
        payload = json.loads(body or b"{}")
        if payload.get("operation") != "upload":
            raise _HttpError(400, "FakeHub only emulates LFS uploads (downloads go through /resolve)")
        ref = (payload.get("ref") or {}).get("name")
        if ref is not None:
            self._resolve(repo, ref)
        transfers = payload.get("transfers") or ["basic"]
        objects = []
        use_multipart = False
        for obj in payload.get("objects", []):
            oid, size = obj.get("oid"), obj.get("size")
            if not (isinstance(oid, str) and len(oid) == 64 and all(c in "0123456789abcdef" for c in oid)
                    and isinstance(size, int) and size >= 0):
                objects.append({"oid": str(oid), "size": size if isinstance(size, int) else -1,
                                "error": {"code": 422, "message": "Invalid oid or size"}})
                continue
            stored = repo["lfs_objects"].get(oid)
            if stored is not None and len(stored) == size:
                objects.append({"oid": oid, "size": size})  # already uploaded: no actions
                continue
            nonce = secrets.token_hex(8)
            self._pending[(repo_id, oid)] = {"nonce": nonce, "size": size, "parts": {}}
            base = f"{self.endpoint}/fake-lfs/{quote(repo_id)}/{oid}"
            upload: dict = {"href": f"{base}?nonce={nonce}", "header": {}}
            chunk = self.multipart_chunk_size
            if chunk and "multipart" in transfers and size > chunk:
                use_multipart = True
                nparts = -(-size // chunk)
                upload["header"] = {"chunk_size": str(chunk),
                                    **{f"{i:05d}": f"{base}/part/{i}?nonce={nonce}" for i in range(1, nparts + 1)}}
            objects.append({"oid": oid, "size": size, "authenticated": True, "actions": {
                "upload": upload,
                "verify": {"href": f"{self.endpoint}/{quote(repo_id)}.git/info/lfs/objects/verify", "header": {}},
            }})
        return _json({"transfer": "multipart" if use_multipart else "basic", "objects": objects},
                     headers={"Content-Type": "application/vnd.git-lfs+json"})

    def _storage(self, method, segs, query, body, authorization_sent) -> _Response:
        # segs: ns, name, oid [, "part", n]
        if len(segs) < 3:
            raise _HttpError(404, "Unknown storage object")
        repo_id, oid = f"{unquote(segs[0])}/{unquote(segs[1])}", segs[2]
        pending = self._pending.get((repo_id, oid))
        if pending is None or query.get("nonce") != pending["nonce"]:
            raise _HttpError(403, "Invalid or expired upload URL")
        if method == "PUT" and len(segs) == 5 and segs[3] == "part":
            pending["parts"][int(segs[4])] = body
            return _Response(200, b"", {"ETag": f'"{hashlib.md5(body).hexdigest()}"'})
        if method == "PUT" and len(segs) == 3:
            return self._store(repo_id, oid, body, pending, 1, authorization_sent)
        if method == "POST" and len(segs) == 3:  # multipart completion
            parts = json.loads(body or b"{}").get("parts", [])
            chunks = []
            for i, part in enumerate(parts, start=1):
                data = pending["parts"].get(part.get("partNumber"))
                if part.get("partNumber") != i or data is None \
                        or part.get("etag") != f'"{hashlib.md5(data).hexdigest()}"':
                    raise _HttpError(400, f"Invalid part {i} in multipart completion")
                chunks.append(data)
            return self._store(repo_id, oid, b"".join(chunks), pending, len(parts), authorization_sent)
        raise _HttpError(404, "Unknown storage operation")

    def _store(self, repo_id, oid, data, pending, nparts, authorization_sent) -> _Response:
        if len(data) != pending["size"] or hashlib.sha256(data).hexdigest() != oid:
            raise _HttpError(400, f"Uploaded content does not match oid {oid} / size {pending['size']}")
        repo = self.repos.get(repo_id)
        if repo is None:
            raise _HttpError(404, "Repository not found")
        repo["lfs_objects"][oid] = data
        del self._pending[(repo_id, oid)]
        self.lfs_uploads.append({"repo_id": repo_id, "oid": oid, "size": len(data), "parts": nparts,
                                 "authorization_sent": authorization_sent})
        return _Response(200, b"", {"ETag": f'"{hashlib.md5(data).hexdigest()}"'})

    def _lfs_verify(self, repo_id, body, auth) -> _Response:
        repo = self._repo(repo_id, auth, write=True)
        payload = json.loads(body or b"{}")
        data = repo["lfs_objects"].get(payload.get("oid"))
        if data is None or len(data) != payload.get("size"):
            raise _HttpError(404, f"LFS object {payload.get('oid')} not found")
        return _json({"message": "ok"})

    def _commit(self, repo_id, rev, query, body, auth) -> _Response:
        repo = self._repo(repo_id, auth, write=True)
        create_pr = query.get("create_pr") in ("1", "true", "True")
        base_branch, head = self._resolve(repo, rev)
        if base_branch is None:
            raise _HttpError(400, f"Cannot commit to a commit id: {rev}")
        try:
            lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise _HttpError(400, "Commit payload is not valid NDJSON") from None
        if not lines or lines[0].get("key") != "header":
            raise _HttpError(400, "Commit payload must start with a header line")
        header = lines[0].get("value") or {}
        message = header.get("summary")
        if not isinstance(message, str) or not message:
            raise _HttpError(400, "Commit summary is required")
        parent = header.get("parentCommit")
        if parent is not None and parent != head:
            raise _HttpError(412, "A commit has happened since. Please refresh and try again.")

        snap = repo["snapshots"][head]
        files, lfs = dict(snap["files"]), dict(snap["lfs"])
        added: dict[str, bytes] = {}
        lfs_added: dict[str, str] = {}
        regular: list[str] = []
        deleted: list[str] = []
        for line in lines[1:]:
            key, value = line.get("key"), line.get("value") or {}
            if key == "file":
                path = _check_path(value.get("path"))
                content = value.get("content", "")
                if value.get("encoding") == "base64":
                    try:
                        data = base64.b64decode(content, validate=True)
                    except (binascii.Error, ValueError):
                        raise _HttpError(400, f"Invalid base64 content for {path}") from None
                else:
                    data = content.encode()
                files[path] = added[path] = data
                lfs.pop(path, None)
                regular.append(path)
            elif key == "lfsFile":
                path = _check_path(value.get("path"))
                oid = value.get("oid")
                data = repo["lfs_objects"].get(oid)
                if value.get("algo", "sha256") != "sha256" or data is None:
                    raise _HttpError(400, f"Your push was rejected because an LFS pointer points to a file that "
                                          f"does not exist ({path}: {oid})")
                if "size" in value and value["size"] != len(data):
                    raise _HttpError(400, f"LFS size mismatch for {path}")
                files[path] = added[path] = data
                lfs[path] = lfs_added[path] = oid
            elif key == "deletedFile":
                path = _check_path(value.get("path"))
                if path not in files:
                    raise _HttpError(404, "A file with this name doesn't exist", "EntryNotFound")
                del files[path]
                lfs.pop(path, None)
                deleted.append(path)
            elif key == "deletedFolder":
                prefix = _check_path(value.get("path").rstrip("/")) + "/"
                for path in [p for p in files if p.startswith(prefix)]:
                    del files[path]
                    lfs.pop(path, None)
                    deleted.append(path)
            else:
                raise _HttpError(400, f"Unknown commit operation: {key!r}")

        pr_num = pr_url = None
        target = base_branch
        if create_pr:
            pr_num = len(repo["prs"]) + 1
            target = f"refs/pr/{pr_num}"
            pr_url = f"{self.endpoint}/{repo_id}/discussions/{pr_num}"
        oid = self._new_oid(repo_id, head, message, sorted((p, hashlib.sha256(d).hexdigest())
                                                           for p, d in files.items()))
        repo["snapshots"][oid] = {"files": files, "lfs": lfs}
        repo["heads"][target] = oid
        repo["branches"][target] = dict(files)
        if create_pr:
            repo["prs"].append({"num": pr_num, "ref": target, "base": base_branch, "title": message,
                                "url": pr_url, "commit": oid})
        repo["commits"].append({
            "oid": oid, "parent": head, "message": message, "description": header.get("description", ""),
            "revision": target, "base_revision": base_branch, "pr": create_pr, "pr_num": pr_num,
            "files": added, "lfs_files": lfs_added, "regular_files": regular, "deleted": deleted,
        })
        return _json({"success": True, "commitOid": oid, "commitUrl": f"{self.endpoint}/{repo_id}/commit/{oid}",
                      "hookOutput": "", "pullRequestUrl": pr_url})

    # ------------------------------------------------------------------ downloads
    def _resolve_file(self, repo_id, rev, path, headers, auth) -> _Response:
        repo = self._repo(repo_id, auth)
        _, oid = self._resolve(repo, rev)
        snap = repo["snapshots"][oid]
        if path not in snap["files"]:
            raise _HttpError(404, "Entry not found", "EntryNotFound", headers={"X-Repo-Commit": oid})
        data = snap["files"][path]
        etag = f'"{self._etag(snap, path)}"'
        out = {"X-Repo-Commit": oid, "ETag": etag, "Accept-Ranges": "bytes",
               "Content-Type": "application/octet-stream"}
        if path in snap["lfs"]:
            out.update({"X-Linked-Etag": etag, "X-Linked-Size": str(len(data))})
        rng = headers.get("range", "")
        if rng.startswith("bytes=") and "," not in rng:
            start_s, _, end_s = rng[6:].partition("-")
            start = int(start_s) if start_s else max(len(data) - int(end_s or 0), 0)
            end = int(end_s) if start_s and end_s else len(data) - 1
            if start >= len(data) or start > end:
                raise _HttpError(416, "Range not satisfiable", headers={"Content-Range": f"bytes */{len(data)}"})
            out["Content-Range"] = f"bytes {start}-{min(end, len(data) - 1)}/{len(data)}"
            return _Response(206, data[start:end + 1], out)
        return _Response(200, data, out)


class _Handler(http.server.BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"
    timeout = 15  # idle keep-alive connections are closed after this many seconds
    server_version = "FakeHub/1.0"

    def setup(self):
        super().setup()
        with self.hub.lock:
            self.hub._conns.add(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            with self.hub.lock:
                self.hub._conns.discard(self.connection)

    def log_message(self, format, *args):  # keep test output quiet
        pass

    def _read_body(self) -> bytes:
        limit = self.hub.max_body_bytes
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                if len(out) + size > limit:
                    raise _HttpError(413, "Request body too large")
                out += self.rfile.read(size)
                self.rfile.readline(1024)
        length = int(self.headers.get("Content-Length") or 0)
        if length > limit:
            raise _HttpError(413, "Request body too large")
        return self.rfile.read(length) if length else b""

    def _serve(self):
        hub = self.hub
        headers = {k.lower(): v for k, v in self.headers.items()}
        recorded = dict(headers)
        if "authorization" in recorded:
            valid = recorded["authorization"] == f"Bearer {hub.token}"
            recorded["authorization"] = "<redacted:valid>" if valid else "<redacted:invalid>"
        with hub.lock:
            hub.requests.append(Request(self.command, self.path, recorded))
        try:
            body = self._read_body()
            step = hub.step_of(self.command, self.path)
            if step is not None and step in hub.fail:
                mode = hub.fail[step]
                with hub.lock:
                    hub.failed.append(step)
                if mode == "drop":  # the connection dies mid-request: no answer at all
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                raise _HttpError(int(mode), f"FakeHub was told to fail at {step}")
            with hub.lock:
                response = hub._handle(self.command, self.path, headers, body)
        except _HttpError as err:
            if err.status == 413:
                self.close_connection = True
            out = {"X-Error-Message": err.message, **err.headers}
            if err.code:
                out["X-Error-Code"] = err.code
            response = _json({"error": err.message, **err.body}, err.status, out)
        except Exception as exc:  # never 5xx: the client would retry with back-off
            with hub.lock:
                hub.errors.append(traceback.format_exc())
            msg = f"FakeHub internal error: {type(exc).__name__}: {exc}"[:500].replace("\n", " ")
            response = _json({"error": msg}, 400, {"X-Error-Message": msg})
            self.close_connection = True
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _serve


try:
    import pytest
except ImportError:  # FakeHub itself does not need pytest
    pytest = None

if pytest is not None:

    @pytest.fixture
    def fake_hub(monkeypatch):
        """A started `FakeHub` expecting token "hf_test_token_123".

        The test suite runs with HF_HUB_OFFLINE=1 (tests/conftest.py) and hf_xet may be installed, so this
        fixture turns offline mode off for this process and turns Xet off both here and (through the
        environment) for subprocesses, which also need HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE=0
        (see `FakeHub.env()`).
        """
        from huggingface_hub import constants

        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
        with FakeHub(TEST_TOKEN) as hub:
            yield hub
