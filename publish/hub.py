"""Publishing to a Hub dataset repo: one atomic commit of parquet parts, card and manifest, then a version tag.

`plan_hub_publish` is pure (no network); `publish_hub` does the calls through an injectable HfApi.
The token comes from huggingface_hub's usual sources (HF_TOKEN, the login cache) and never appears
in anything this module prints or raises.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, get_token
from huggingface_hub.errors import RepositoryNotFoundError

from tokenshift.publish.contents import PublishFile, checked_build, format_plan, prepare, publish_files, read_lock
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.schemas.registry import refuse_existing
from tokenshift.schemas.tables import TABLE_FIELDS

HUB_PREFIX = "hf://datasets/"
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
_TOKEN_LIKE = re.compile(r"hf_[A-Za-z0-9]{8,}")


@dataclass(frozen=True)
class HubPlan:
    """Everything one publish sends: the commit's operations (huggingface_hub types) and the tag."""

    repo_id: str
    tag: str
    operations: tuple[CommitOperationAdd | CommitOperationDelete, ...]
    files: tuple[PublishFile, ...]
    commit_message: str

    @property
    def deletions(self) -> list[str]:
        return [op.path_in_repo for op in self.operations if isinstance(op, CommitOperationDelete)]


def parse_hub_target(target: str) -> str | None:
    """The repo id of an `hf://datasets/ORG/NAME` target; None for a local folder; an error for other URLs."""
    if "://" not in target:
        return None
    repo_id = target[len(HUB_PREFIX):].strip("/") if target.startswith(HUB_PREFIX) else ""
    if not _REPO_ID.fullmatch(repo_id) or ".." in repo_id:
        raise TokenshiftError(f"--to {target} is not a Hub dataset target: write hf://datasets/ORG/NAME "
                              "or a local folder")
    return repo_id


def _managed(path_in_repo: str) -> bool:
    """Paths a publish owns: parquet files under a table folder (anything else in the repo is left alone)."""
    return path_in_repo.split("/", 1)[0] in TABLE_FIELDS and path_in_repo.endswith(".parquet")


def plan_hub_publish(build_dir: str | Path, repo_id: str, version: str,
                     existing_files: tuple[str, ...] | list[str] = (), manifest: dict | None = None) -> HubPlan:
    """The commit that makes the repo hold exactly this build, and the tag naming it (no network).

    Parquet parts already in the repo but not in this build are deleted in the same commit, so the
    tagged revision never mixes parts of two builds.
    """
    build = Path(build_dir)
    manifest = manifest if manifest is not None else checked_build(build, repo_id)
    files = tuple(publish_files(build, manifest, version))
    shipped = {f.relpath for f in files}
    deletes = [CommitOperationDelete(path_in_repo=p) for p in sorted(existing_files)
               if _managed(p) and p not in shipped]
    adds = [CommitOperationAdd(path_in_repo=f.relpath, path_or_fileobj=f.data if f.data is not None else str(f.source))
            for f in files]
    message = f"tokenshift {version}: {len(adds)} files ({manifest.get('schema_version')} schema)"
    return HubPlan(repo_id=repo_id, tag=version, operations=(*deletes, *adds), files=files, commit_message=message)


def redact(text: str) -> str:
    """`text` with the current Hub token, and anything shaped like a token, replaced by ***."""
    token = get_token()
    if token:
        text = text.replace(token, "***")
    return _TOKEN_LIKE.sub("hf_***", text)


def _call(what: str, fn: Callable, *args, **kwargs):
    """One Hub call; any failure becomes a one-line, token-free TokenshiftError."""
    try:
        return fn(*args, **kwargs)
    except TokenshiftError:
        raise
    except Exception as err:  # noqa: BLE001  (network, HTTP and auth errors all end the publish)
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise TokenshiftError(redact(f"Hub {what} failed ({type(err).__name__}: {first_line}): check the "
                                     "repo id, your network and `hf auth login`, then publish again")) from None


@dataclass(frozen=True)
class RemoteState:
    exists: bool
    tags: tuple[str, ...] = ()
    head: str | None = None
    files: tuple[str, ...] = ()


def remote_state(api, repo_id: str) -> RemoteState:
    """Tags, head commit and files of the repo's main branch (exists=False for a repo not created yet)."""
    def refs():
        try:
            return api.list_repo_refs(repo_id, repo_type="dataset")
        except RepositoryNotFoundError:
            return None

    found = _call("listing refs", refs)
    if found is None:
        return RemoteState(exists=False)
    head = next((b.target_commit for b in found.branches if b.name == "main"), None)
    files = tuple(_call("listing files", api.list_repo_files, repo_id, repo_type="dataset", revision=head)) \
        if head else ()
    return RemoteState(exists=True, tags=tuple(t.name for t in found.tags), head=head, files=files)


def publish_hub(build_dir: str | Path, repo_id: str, version: str, api=None, dry_run: bool = False,
                echo: Callable[[str], None] = print) -> HubPlan:
    """Validate, plan and (unless dry_run) commit the build to `repo_id` and tag the commit `version`.

    An existing tag (also v1.2.0 vs 1.2.0) is refused, never moved. The commit names its parent,
    so a push that raced another publish fails instead of mixing builds.
    """
    build = Path(build_dir)
    api = api if api is not None else HfApi()
    found: dict = {}

    def check_tags() -> None:
        try:
            found["state"] = remote_state(api, repo_id)
        except TokenshiftError as err:
            if not dry_run:
                raise
            found["state"], found["unknown"] = None, (f"  note: repo state unknown, existing tags and stale "
                                                      f"files not checked ({err})")
        if found["state"] is not None:
            refuse_existing(list(found["state"].tags), version, repo_id, what="tag")

    with read_lock(build, "tokenshift publish"):  # no build rewrites the parts while they are sent
        return _publish_prepared(build, repo_id, version, api, dry_run, echo, check_tags, found)


def _publish_prepared(build: Path, repo_id: str, version: str, api, dry_run: bool, echo: Callable[[str], None],
                      check_tags: Callable[[], None], found: dict) -> HubPlan:
    prepared = prepare(build, version, repo_id, check_tags)
    state, unknown, version = found["state"], found.get("unknown"), prepared.version
    plan = plan_hub_publish(build, repo_id, version, state.files if state else (), prepared.manifest)
    if dry_run:
        extra = [f"  tag: {plan.tag} (on the new commit)",
                 *(f"  delete: {p} (not in this build)" for p in plan.deletions),
                 *([f"  create: dataset repo {repo_id}"] if state is not None and not state.exists else []),
                 *([unknown] if state is None else []),
                 "dry run: nothing was sent"]
        echo(format_plan(list(plan.files), f"{HUB_PREFIX}{repo_id}", extra))
        return plan
    if not state.exists:
        _call("repo creation", api.create_repo, repo_id, repo_type="dataset", exist_ok=True)
    commit = _call("commit", api.create_commit, repo_id, operations=list(plan.operations),
                   commit_message=plan.commit_message, repo_type="dataset", parent_commit=state.head)
    _call("tagging", api.create_tag, repo_id, tag=plan.tag, revision=commit.oid, repo_type="dataset",
          tag_message=plan.commit_message)
    echo(f"published {build} to {HUB_PREFIX}{repo_id} at tag {plan.tag} (commit {commit.oid})")
    return plan

