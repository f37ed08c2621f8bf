"""Publish to the Hugging Face Hub: assemble a repo folder, then `create_repo` + `upload_folder`.

`publish_model` is what `publish.py` and `train.py --push_to_hub` call; `upload_folder_to_hub` is shared
with the dataset and Space publishers. With `dry_run=True` nothing is sent: the folder is only written.
`HF_ENDPOINT` (read by `huggingface_hub`) selects the server, so a local stand-in can receive the upload.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .repo_folder import ModelRepoFolder, assemble_model_repo, check_repo_id

logger = logging.getLogger(__name__)

REPO_TYPES = ("model", "dataset", "space")


@dataclass
class PublishResult:
    """Where a publication went.

    Attributes:
        folder: the assembled repo folder (None when it lived in a temporary folder, now deleted).
        repo_id: the Hub repo.
        repo_url: the repo's URL (None for a dry run).
        commit_url: the upload commit's URL (None for a dry run).
        files: the published files, relative to the repo root.
    """

    folder: Path | None
    repo_id: str
    repo_url: str | None
    commit_url: str | None
    files: list[str]


def check_can_upload(token: str | None) -> None:
    """Fail early, in one line, when an upload cannot work: offline mode or no token.

    Raises:
        ValueError: `HF_HUB_OFFLINE` is set, or there is no token at all.
    """
    from huggingface_hub import constants, get_token

    if constants.HF_HUB_OFFLINE:
        raise ValueError(
            "HF_HUB_OFFLINE is set: unset it to upload, or pass --dry_run to only write the folder."
        )
    if not (token or get_token()):
        raise ValueError(
            "No Hugging Face token: run `hf auth login`, set HF_TOKEN, or pass --token (a write token)."
        )


def upload_folder_to_hub(
    folder: str | Path,
    repo_id: str,
    *,
    repo_type: str = "model",
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
    space_sdk: str | None = None,
) -> tuple[str, str]:
    """Create the repo if needed (`exist_ok=True`) and upload every file of `folder` in one commit.

    Args:
        folder: the assembled repo folder.
        repo_id: `NAMESPACE/NAME`.
        repo_type: `model`, `dataset` or `space`.
        private: create the repo private (ignored when it already exists).
        token: a write token (default: the logged-in token or `HF_TOKEN`).
        commit_message: default "Upload <folder name> with gigapiano <version>".
        space_sdk: the SDK of a new Space (`gradio`).

    Returns:
        `(repo_url, commit_url)`.
    """
    from huggingface_hub import HfApi

    from gigapiano import __version__

    if repo_type not in REPO_TYPES:
        raise ValueError(f"repo_type must be one of {', '.join(REPO_TYPES)}, got {repo_type!r}.")
    check_repo_id(repo_id)
    check_can_upload(token)
    api = HfApi(token=token)
    repo_url = api.create_repo(
        repo_id, repo_type=repo_type, private=private, exist_ok=True, space_sdk=space_sdk
    )
    logger.info("Uploading %s to %s (%s repo).", folder, repo_id, repo_type)
    commit = api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type=repo_type,
        commit_message=commit_message or f"Upload {Path(folder).name} with gigapiano {__version__}",
    )
    logger.info("Published %s: %s", repo_id, commit.commit_url)
    return str(repo_url), str(commit.commit_url)


def publish_model(
    run_dir: str | Path,
    repo_id: str,
    *,
    output_dir: str | Path | None = None,
    dry_run: bool = False,
    private: bool = False,
    token: str | None = None,
    base_repo_id: str | None = None,
    dataset_id: str | None = None,
    include_handler: bool = True,
    overwrite: bool = False,
    commit_message: str | None = None,
) -> PublishResult:
    """Assemble the Hub repo of a finished training run and upload it.

    Args:
        run_dir: a finished `train.py` run folder.
        repo_id: `NAMESPACE/NAME`, e.g. `my-user/gigapiano-baroque`.
        output_dir: where to write the repo folder; required with `dry_run`. Without it the folder is
            assembled in a temporary folder that is deleted after the upload.
        dry_run: only write the folder; nothing is sent.
        private: create the repo private.
        token: a write token (default: the logged-in one or `HF_TOKEN`).
        base_repo_id: Hub id of the base model (see `assemble_model_repo`).
        dataset_id: dataset repo named in the card (default `<namespace>/gigapiano-maestro-styles`).
        include_handler: publish `handler.py` + `requirements.txt`.
        overwrite: replace the content of a non-empty `output_dir`.
        commit_message: the upload's commit message.

    Returns:
        A `PublishResult`.
    """
    check_repo_id(repo_id)
    if dry_run and output_dir is None:
        raise ValueError("--dry_run needs --output_dir (where to write the repo folder).")
    if not dry_run:
        check_can_upload(token)  # before assembling: a missing token should not cost a minute
    assemble = dict(
        base_repo_id=base_repo_id, dataset_id=dataset_id, include_handler=include_handler, overwrite=overwrite
    )
    if output_dir is not None:
        folder: ModelRepoFolder = assemble_model_repo(run_dir, output_dir, repo_id, **assemble)
        if dry_run:
            return PublishResult(folder.path, repo_id, None, None, folder.files)
        repo_url, commit_url = upload_folder_to_hub(
            folder.path, repo_id, private=private, token=token, commit_message=commit_message
        )
        return PublishResult(folder.path, repo_id, repo_url, commit_url, folder.files)
    with tempfile.TemporaryDirectory(prefix="gigapiano-publish-") as scratch:
        folder = assemble_model_repo(run_dir, Path(scratch) / repo_id.split("/")[1], repo_id, **assemble)
        repo_url, commit_url = upload_folder_to_hub(
            folder.path, repo_id, private=private, token=token, commit_message=commit_message
        )
    return PublishResult(None, repo_id, repo_url, commit_url, folder.files)


__all__ = ["PublishResult", "check_can_upload", "publish_model", "upload_folder_to_hub"]
