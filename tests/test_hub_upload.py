"""The upload path against a local stand-in for the Hub API on 127.0.0.1 (no test touches the internet).

The stand-in implements what `huggingface_hub` 2.4 calls for `create_repo` + `upload_folder`:
`POST /api/repos/create`, `POST /api/validate-yaml` (the README's metadata), `POST
/api/{type}s/{repo}/preupload/{revision}` (it answers "regular" for every file, so contents travel inline
in the commit instead of through LFS / Xet storage) and `POST /api/{type}s/{repo}/commit/{revision}` (an
NDJSON body: a header line, then one line per file).
Every request is recorded; anything else is answered 404 and shows up in the record.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from huggingface_hub import constants

import publish
from gigapiano.hub.dataset import DatasetBuildSettings, assemble_dataset_repo
from gigapiano.hub.publish import upload_folder_to_hub
from gigapiano.hub.space import assemble_space

REPO = Path(__file__).resolve().parents[1]
DUMMY_TOKEN = "hf_dummy_token_for_tests"
COMMIT_OID = "f" * 40


class FakeHub:
    """A recording HTTP server that speaks the few Hub API endpoints an upload needs."""

    def __init__(self, fail_create_with: int | None = None) -> None:
        self.requests: list[dict] = []
        self.repos: dict[str, dict] = {}
        self.files: dict[str, dict[str, bytes]] = {}
        self.fail_create_with = fail_create_with
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hub.requests.append(
                    {"method": "POST", "path": self.path, "headers": dict(self.headers), "body": body}
                )
                status, answer = hub.answer(self.path.split("?")[0], body)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:  # noqa: N802
                hub.requests.append(
                    {"method": "GET", "path": self.path, "headers": dict(self.headers), "body": b""}
                )
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_HEAD = do_GET  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, path: str, body: bytes) -> tuple[int, dict]:
        parts = path.strip("/").split("/")
        if path == "/api/repos/create":
            if self.fail_create_with:
                return self.fail_create_with, {"error": "Invalid credentials in Authorization header"}
            request = json.loads(body)
            repo_id = f"{request['organization']}/{request['name']}"
            self.repos[repo_id] = request
            prefix = {"dataset": "datasets/", "space": "spaces/"}.get(request.get("type"), "")
            return 200, {"url": f"{self.url}/{prefix}{repo_id}", "name": repo_id}
        if path == "/api/validate-yaml":
            return 200, {"errors": [], "warnings": []}
        if len(parts) == 6 and parts[0] == "api" and parts[4] == "preupload":
            files = json.loads(body)["files"]
            return 200, {
                "files": [
                    {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                    for f in files
                ]
            }
        if len(parts) == 6 and parts[0] == "api" and parts[4] == "commit":
            repo_id = f"{parts[2]}/{parts[3]}"
            lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
            stored = self.files.setdefault(f"{parts[1]}:{repo_id}", {})
            for line in lines:
                if line["key"] == "file":
                    assert line["value"]["encoding"] == "base64"
                    stored[line["value"]["path"]] = base64.b64decode(line["value"]["content"])
            return 200, {
                "commitUrl": f"{self.url}/{repo_id}/commit/{COMMIT_OID}",
                "commitOid": COMMIT_OID,
                "pullRequestUrl": None,
            }
        return 404, {"error": f"the stand-in Hub does not implement {path}"}

    def paths(self) -> list[str]:
        """The writes, in order. Reads are left out: huggingface_hub may also GET best-effort registries
        (e.g. `/api/agent-harnesses`), which the stand-in answers 404 and which change nothing."""
        assert all(r["method"] in ("GET", "HEAD", "POST") for r in self.requests)
        return [f"POST {r['path'].split('?')[0]}" for r in self.requests if r["method"] == "POST"]


def folder_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def fake_hub_env(monkeypatch):
    """Points an in-process `huggingface_hub` at a FakeHub (its constants are read at import time)."""

    def use(hub: FakeHub) -> None:
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    return use


@pytest.mark.slow
def test_publish_cli_creates_the_repo_and_uploads_exactly_the_dry_run_folder(trained_tiny_run, tmp_path):
    out = tmp_path / "repo"
    env = {
        **os.environ,
        "HF_ENDPOINT": "",  # set below, once the server has a port
        "HF_TOKEN": DUMMY_TOKEN,
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HOME": str(tmp_path / "hf-home"),  # no saved token of the machine's user
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": "1",
    }
    with FakeHub() as hub:
        env["HF_ENDPOINT"] = hub.url
        command = [sys.executable, str(REPO / "publish.py"), "--run_dir", str(trained_tiny_run),
                   "--repo_id", "someone/gigapiano-tiny", "--output_dir", str(out), "--private",
                   "--log_level", "warning"]  # fmt: skip
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == [
        str(out.resolve()),
        f"{hub.url}/someone/gigapiano-tiny",
        f"{hub.url}/someone/gigapiano-tiny/commit/{COMMIT_OID}",
    ]

    # The requests huggingface_hub made: create the repo, validate the card's metadata, ask how to upload,
    # commit (nothing else).
    assert hub.paths() == [
        "POST /api/repos/create",
        "POST /api/validate-yaml",
        "POST /api/models/someone/gigapiano-tiny/preupload/main",
        "POST /api/models/someone/gigapiano-tiny/commit/main",
    ]
    posts = [r for r in hub.requests if r["method"] == "POST"]
    assert all(r["headers"].get("authorization") == f"Bearer {DUMMY_TOKEN}" for r in posts)
    create = json.loads(posts[0]["body"])
    assert create["name"] == "gigapiano-tiny" and create["organization"] == "someone"
    assert create["visibility"] == "private"
    local = folder_files(out)
    validate = json.loads(posts[1]["body"])
    assert validate == {"content": local["README.md"].decode(), "repoType": "model"}
    preupload = json.loads(posts[2]["body"])["files"]
    assert {f["path"]: f["size"] for f in preupload} == {path: len(data) for path, data in local.items()}
    header = json.loads(posts[3]["body"].decode().splitlines()[0])
    assert header["key"] == "header" and header["value"]["summary"].startswith("Upload repo with gigapiano")

    # Every file of the folder arrived, byte for byte (weights, code, card, handler, example prompt).
    assert hub.files["models:someone/gigapiano-tiny"] == local
    assert {"model.safetensors", "README.md", "handler.py", "examples/fur_elise.mid"} <= set(local)


def test_dataset_and_space_go_to_their_repo_types(fake_maestro_root, tmp_path, fake_hub_env):
    settings = DatasetBuildSettings(
        maestro_dir=str(fake_maestro_root), cache_dir=str(tmp_path / "cache"), pieces="all"
    )
    dataset = assemble_dataset_repo(
        tmp_path / "dataset", "someone/gigapiano-maestro-styles", ["baroque"], settings
    )
    space = assemble_space(
        tmp_path / "space", "someone/gigapiano-demo", {"baroque": "someone/gigapiano-baroque"}
    )
    with FakeHub() as hub:
        fake_hub_env(hub)
        upload_folder_to_hub(dataset.path, dataset.repo_id, repo_type="dataset", token=DUMMY_TOKEN)
        upload_folder_to_hub(
            space.path, space.repo_id, repo_type="space", token=DUMMY_TOKEN, space_sdk="gradio"
        )
    assert hub.paths() == [
        "POST /api/repos/create",
        "POST /api/validate-yaml",
        "POST /api/datasets/someone/gigapiano-maestro-styles/preupload/main",
        "POST /api/datasets/someone/gigapiano-maestro-styles/commit/main",
        "POST /api/repos/create",
        "POST /api/validate-yaml",
        "POST /api/spaces/someone/gigapiano-demo/preupload/main",
        "POST /api/spaces/someone/gigapiano-demo/commit/main",
    ]
    assert hub.repos["someone/gigapiano-maestro-styles"]["type"] == "dataset"
    assert hub.repos["someone/gigapiano-demo"]["type"] == "space"
    assert hub.repos["someone/gigapiano-demo"]["sdk"] == "gradio"
    assert hub.files["datasets:someone/gigapiano-maestro-styles"] == folder_files(dataset.path)
    assert hub.files["spaces:someone/gigapiano-demo"] == folder_files(space.path)


def test_a_refused_upload_is_one_error_line(trained_tiny_run, tmp_path, fake_hub_env, capsys):
    with FakeHub(fail_create_with=401) as hub:
        fake_hub_env(hub)
        code = publish.main(
            ["--run_dir", str(trained_tiny_run), "--repo_id", "someone/x", "--token", DUMMY_TOKEN,
             "--log_level", "error"]
        )  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.startswith("error: ") and "401" in err and len(err.splitlines()) == 1
    assert hub.paths() == ["POST /api/repos/create"]  # nothing uploaded after the refusal
