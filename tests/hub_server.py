"""A stand-in for the Hugging Face Hub's HTTP API, on 127.0.0.1 only, for tests without network.

It is NOT the Hub: it implements the requests huggingface_hub 2.x sends for ``create_repo``, ``repo_info`` /
``model_info``, ``upload_folder`` / ``create_commit`` (``validate-yaml``, ``preupload``, the git-LFS batch API with
basic PUT uploads and verify, the NDJSON ``commit``), ``list_repo_tree`` and ``hf_hub_download`` /
``snapshot_download`` (``resolve/`` with the ``X-Repo-Commit``, ``ETag`` / ``X-Linked-Etag`` and size headers),
and answers them as the Hub does (read from huggingface_hub's client code, not from the Hub's). It records every
request, so a test can assert on exactly what would have reached the Hub. Xet storage is not implemented: clients
must run with ``HF_HUB_DISABLE_XET=1`` so that large files go through the legacy LFS protocol.

    with HubStandIn() as hub:           # hub.endpoint == "http://127.0.0.1:<port>"
        ...                             # HF_ENDPOINT=hub.endpoint HF_TOKEN=... HF_HUB_DISABLE_XET=1
        hub.repos["me/editor"].files    # {path: bytes}, as committed
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

# The patterns of the .gitattributes the Hub puts in a new model repo (files stored with LFS), and its size rule.
DEFAULT_LFS_PATTERNS = ("*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib",
                        "*.lfs.*", "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot",
                        "*.parquet", "*.pb", "*.pickle", "*.pkl", "*.pt", "*.pth", "*.rar", "*.safetensors",
                        "*.tar.*", "*.tar", "*.tflite", "*.tgz", "*.wasm", "*.xz", "*.zip", "*.zst", "*tfevents*")
MAX_REGULAR_FILE = 10 * 2**20


def git_blob_sha1(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Repo:
    repo_id: str
    private: bool
    files: dict[str, bytes] = field(default_factory=dict)
    lfs_paths: set[str] = field(default_factory=set)
    commits: list[str] = field(default_factory=list)  # commit oids, oldest first

    @property
    def head(self) -> str:
        return self.commits[-1] if self.commits else "0" * 40


class HubStandIn:
    def __init__(self):
        self.repos: dict[str, Repo] = {}
        self.lfs_store: dict[str, bytes] = {}
        self.requests: list[dict] = []  # every request: method, path, query, auth, and the parsed body
        self.lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"hub": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "HubStandIn":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def requests_to(self, kind: str) -> list[dict]:
        return [r for r in self.requests if r["kind"] == kind]


class _Handler(BaseHTTPRequestHandler):
    hub: HubStandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    # --- plumbing ------------------------------------------------------------------------------------------------
    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, content_type="application/json",
              head_only: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head_only:
            self.wfile.write(body)

    def _json(self, status: int, payload, headers: dict | None = None, content_type="application/json") -> None:
        self._send(status, json.dumps(payload).encode(), headers, content_type)

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message}, {"X-Error-Message": message})

    def _record(self, kind: str, body=None) -> None:
        with self.hub.lock:
            self.hub.requests.append({"kind": kind, "method": self.command, "path": urlsplit(self.path).path,
                                      "query": parse_qs(urlsplit(self.path).query),
                                      "authorized": self.headers.get("Authorization", "").startswith("Bearer "),
                                      "body": body})

    def _repo(self, repo_id: str, write: bool = False) -> Repo | None:
        repo = self.hub.repos.get(repo_id)
        authorized = self.headers.get("Authorization", "").startswith("Bearer ")
        if repo is None or (repo.private and not authorized) or (write and not authorized):
            # The Hub answers 404 for a private repo it will not show, as for a missing one.
            self._json(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound",
                                                                "X-Error-Message": "Repository not found"})
            return None
        return repo

    # --- routes ---------------------------------------------------------------------------------------------------
    def do_POST(self) -> None:
        path = unquote(urlsplit(self.path).path)
        body = self._body()
        if path == "/api/repos/create":
            return self._create_repo(json.loads(body))
        if path == "/api/validate-yaml":
            return self._validate_yaml(json.loads(body))
        if path.startswith("/api/models/") and "/preupload/" in path:
            repo_id, _ = path[len("/api/models/"):].split("/preupload/", 1)
            return self._preupload(repo_id, json.loads(body))
        if path.startswith("/api/models/") and "/commit/" in path:
            repo_id, _ = path[len("/api/models/"):].split("/commit/", 1)
            return self._commit(repo_id, body)
        if path.endswith(".git/info/lfs/objects/batch"):
            return self._lfs_batch(path[1:-len(".git/info/lfs/objects/batch")], json.loads(body))
        if path.startswith("/__lfs_verify/"):
            oid = path.rsplit("/", 1)[1]
            self._record("lfs-verify", json.loads(body or b"{}"))
            return self._json(200 if oid in self.hub.lfs_store else 404, {})
        self._error(404, f"no route for POST {path}")

    def do_PUT(self) -> None:
        path = unquote(urlsplit(self.path).path)
        body = self._body()
        if path.startswith("/__lfs_upload/"):
            oid = path.rsplit("/", 1)[1]
            self._record("lfs-upload", {"oid": oid, "size": len(body)})
            if hashlib.sha256(body).hexdigest() != oid:
                return self._error(400, "sha256 mismatch")
            self.hub.lfs_store[oid] = body
            return self._send(200)
        self._error(404, f"no route for PUT {path}")

    def do_GET(self) -> None:
        self._read(head_only=False)

    def do_HEAD(self) -> None:
        self._read(head_only=True)

    def _read(self, head_only: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        if path.startswith("/api/models/"):
            rest = path[len("/api/models/"):]
            if "/tree/" in rest:
                repo_id, tail = rest.split("/tree/", 1)
                return self._tree(repo_id, tail)
            repo_id, _, revision = rest.partition("/revision/")
            return self._model_info(repo_id, revision or "main")
        if "/resolve/" in path:
            repo_id, tail = path[1:].split("/resolve/", 1)
            revision, _, filename = tail.partition("/")
            return self._resolve(repo_id, revision, filename, head_only)
        self._error(404, f"no route for GET {path}")

    # --- handlers -------------------------------------------------------------------------------------------------
    def _create_repo(self, payload: dict) -> None:
        self._record("create-repo", payload)
        if not self.headers.get("Authorization", "").startswith("Bearer "):
            return self._error(401, "Invalid credentials in Authorization header")
        if payload.get("type", "model") != "model":
            return self._error(400, "this stand-in serves model repos only")
        repo_id = f"{payload['organization'] or 'user'}/{payload['name']}"
        url = f"{self.hub.endpoint}/{repo_id}"
        with self.hub.lock:
            if repo_id in self.hub.repos:
                return self._json(409, {"error": "You already created this model repo", "url": url})
            # Without "visibility" the Hub makes a public repo (unless the organisation's default is private).
            private = payload.get("visibility", "public") != "public"
            self.hub.repos[repo_id] = Repo(repo_id, private=private)
        self._json(200, {"url": url, "name": repo_id})

    def _validate_yaml(self, payload: dict) -> None:
        import yaml

        self._record("validate-yaml", payload)
        content = payload.get("content", "")
        if content.startswith("---"):
            try:
                metadata = yaml.safe_load(content.split("---", 2)[1])
            except yaml.YAMLError as error:
                return self._json(400, {"errors": [{"message": f"invalid YAML: {error}"}]})
            if not isinstance(metadata, dict):
                return self._json(400, {"errors": [{"message": "metadata must be a mapping"}]})
        self._json(200, {"errors": [], "warnings": []})

    def _preupload(self, repo_id: str, payload: dict) -> None:
        self._record("preupload", payload)
        repo = self._repo(repo_id, write=True)
        if repo is None:
            return
        answers = []
        for file in payload["files"]:
            sample = base64.b64decode(file["sample"])
            lfs = (any(fnmatch.fnmatch(file["path"].rsplit("/", 1)[-1], p) for p in DEFAULT_LFS_PATTERNS)
                   or file["size"] > MAX_REGULAR_FILE or b"\0" in sample)
            existing = repo.files.get(file["path"])
            oid = None
            if existing is not None:
                oid = hashlib.sha256(existing).hexdigest() if lfs else git_blob_sha1(existing)
            answers.append({"path": file["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                            "oid": oid})
        self._json(200, {"files": answers, "commitOid": repo.head})

    def _lfs_batch(self, repo_id: str, payload: dict) -> None:
        self._record("lfs-batch", payload)
        if self._repo(repo_id, write=True) is None:
            return
        objects = []
        for obj in payload["objects"]:
            answer = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.hub.lfs_store:  # already stored: no actions, the client skips it
                answer["actions"] = {
                    "upload": {"href": f"{self.hub.endpoint}/__lfs_upload/{obj['oid']}", "header": {}},
                    "verify": {"href": f"{self.hub.endpoint}/__lfs_verify/{obj['oid']}", "header": {}},
                }
            objects.append(answer)
        self._json(200, {"transfer": "basic", "objects": objects}, content_type="application/vnd.git-lfs+json")

    def _commit(self, repo_id: str, body: bytes) -> None:
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        self._record("commit", lines)
        if self.headers.get("Content-Type", "").split(";")[0] != "application/x-ndjson":
            return self._error(400, "commit payloads are NDJSON")
        repo = self._repo(repo_id, write=True)
        if repo is None:
            return
        files, lfs_paths = dict(repo.files), set(repo.lfs_paths)
        for line in lines:
            key, value = line["key"], line["value"]
            if key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
                lfs_paths.discard(value["path"])
            elif key == "lfsFile":
                if value["oid"] not in self.hub.lfs_store:
                    return self._error(422, f"LFS object {value['oid']} of {value['path']} was never uploaded")
                files[value["path"]] = self.hub.lfs_store[value["oid"]]
                lfs_paths.add(value["path"])
            elif key == "deletedFile":
                files.pop(value["path"], None)
            elif key not in ("header",):
                return self._error(400, f"unknown commit operation {key!r}")
        oid = hashlib.sha1(repo.head.encode() + body).hexdigest()
        with self.hub.lock:
            repo.files, repo.lfs_paths = files, lfs_paths
            repo.commits.append(oid)
        self._json(200, {"success": True, "commitOid": oid, "commitUrl": f"{self.hub.endpoint}/{repo_id}/commit/{oid}",
                         "pullRequestUrl": None})

    def _revision_ok(self, repo: Repo, revision: str) -> bool:
        if revision in ("main", repo.head) and repo.commits:
            return True
        self._json(404, {"error": f"Invalid rev id: {revision}"}, {"X-Error-Code": "RevisionNotFound",
                                                                   "X-Error-Message": "Invalid rev id"})
        return False

    def _model_info(self, repo_id: str, revision: str) -> None:
        self._record("model-info")
        repo = self._repo(repo_id)
        if repo is None:
            return
        if repo.commits and not self._revision_ok(repo, revision):
            return
        self._json(200, {"_id": repo_id, "id": repo_id, "modelId": repo_id, "private": repo.private,
                         "sha": repo.head if repo.commits else None, "disabled": False, "gated": False,
                         "downloads": 0, "likes": 0, "tags": [], "library_name": None,
                         "siblings": [{"rfilename": path} for path in sorted(repo.files)]})

    def _entry(self, repo: Repo, path: str) -> dict:
        content = repo.files[path]
        entry = {"type": "file", "path": path, "size": len(content), "oid": git_blob_sha1(content)}
        if path in repo.lfs_paths:
            entry["lfs"] = {"oid": hashlib.sha256(content).hexdigest(), "size": len(content), "pointerSize": 134}
        return entry

    def _tree(self, repo_id: str, tail: str) -> None:
        self._record("tree")
        repo = self._repo(repo_id)
        if repo is None:
            return
        revision, _, prefix = tail.partition("/")
        if not self._revision_ok(repo, revision):
            return
        recursive = parse_qs(urlsplit(self.path).query).get("recursive", ["false"])[0].lower() == "true"
        prefix = prefix.strip("/")
        entries, folders = [], set()
        for path in sorted(repo.files):
            if prefix and not path.startswith(prefix + "/"):
                continue
            relative = path[len(prefix) + 1:] if prefix else path
            parts = relative.split("/")
            for depth in range(1, len(parts)):
                if recursive or depth == 1:
                    folders.add("/".join(([prefix] if prefix else []) + parts[:depth]))
            if recursive or len(parts) == 1:
                entries.append(self._entry(repo, path))
        entries += [{"type": "directory", "path": folder, "size": 0, "oid": git_blob_sha1(folder.encode())}
                    for folder in sorted(folders)]
        self._json(200, entries)

    def _resolve(self, repo_id: str, revision: str, filename: str, head_only: bool) -> None:
        self._record("resolve-head" if head_only else "resolve-get", {"file": filename})
        repo = self._repo(repo_id)
        if repo is None or not self._revision_ok(repo, revision):
            return
        if filename not in repo.files:
            return self._json(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound",
                                                                 "X-Error-Message": "Entry not found"})
        content = repo.files[filename]
        headers = {"X-Repo-Commit": repo.head, "ETag": f'"{git_blob_sha1(content)}"', "Accept-Ranges": "bytes"}
        if filename in repo.lfs_paths:
            headers |= {"X-Linked-Etag": f'"{hashlib.sha256(content).hexdigest()}"',
                        "X-Linked-Size": str(len(content))}
        self._send(200, content, headers, content_type="application/octet-stream", head_only=head_only)
