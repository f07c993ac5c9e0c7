"""DVC remotes: the committed config, and a push/pull round trip through S3 (moto)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dvc.repo import Repo


def read_remotes(root: Path) -> tuple[str, dict[str, str]]:
    """Return (default remote, name to url) from the project's .dvc/config."""
    from configobj import ConfigObj

    config = ConfigObj(str(root / ".dvc" / "config"))
    remotes = {
        section.split('"')[1]: values["url"]
        for section, values in config.items()
        if section.startswith("remote ")
    }
    return config.get("core", {}).get("remote", ""), remotes


def test_config_default_remote_is_local(project_root):
    default, remotes = read_remotes(project_root)
    assert default == "local"
    assert "://" not in remotes["local"]
    assert remotes["s3"].startswith("s3://")
    assert "endpointurl" not in (project_root / ".dvc" / "config").read_text()


def dvc(args: list[str], cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stderr}"
    return result.stdout + result.stderr


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_s3_push_pull_round_trip(aws_env, project_root, tmp_path, monkeypatch):
    _, remotes = read_remotes(project_root)
    url = remotes["s3"]
    bucket = url.removeprefix("s3://").split("/")[0]
    s3 = aws_env.client("s3")
    s3.create_bucket(Bucket=bucket)

    # A throwaway git + DVC repository with the project's s3 remote URL.
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    monkeypatch.chdir(repo)
    Repo.init(str(repo))
    data = repo / "data"
    (data / "folder").mkdir(parents=True)
    (data / "readings.csv").write_text("ts,device,temp\n1594512094.3859746,b8,22.7\n")
    (data / "folder" / "a.bin").write_bytes(os.urandom(2048))
    (data / "folder" / "b.txt").write_text("second file in a tracked folder\n")
    tracked = [
        data / "readings.csv",
        data / "folder" / "a.bin",
        data / "folder" / "b.txt",
    ]
    before = {path: sha256(path) for path in tracked}
    with Repo(str(repo)) as dvc_repo:
        dvc_repo.add(["data/readings.csv", "data/folder"])
        with dvc_repo.config.edit() as config:
            config["remote"]["s3"] = {"url": url, "region": aws_env.region}
        # Endpoint and keys go to config.local, which git ignores.
        with dvc_repo.config.edit("local") as config:
            config["remote"]["s3"] = {
                "endpointurl": aws_env.url,
                "access_key_id": aws_env.access_key_id,
                "secret_access_key": aws_env.secret_access_key,
            }
    assert aws_env.secret_access_key not in (repo / ".dvc" / "config").read_text()

    dvc(["push", "-r", "s3"], repo)
    prefix = url.removeprefix(f"s3://{bucket}").strip("/")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    # Three files plus the folder's .dir listing.
    assert listed["KeyCount"] == 4

    # Empty the cache and the workspace, then restore from S3 alone.
    shutil.rmtree(repo / ".dvc" / "cache")
    (data / "readings.csv").unlink()
    shutil.rmtree(data / "folder")
    dvc(["pull", "-r", "s3"], repo)

    for path, digest in before.items():
        assert path.is_file(), f"{path} not restored"
        assert sha256(path) == digest, f"{path} differs after the round trip"
