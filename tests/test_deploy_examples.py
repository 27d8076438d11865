"""examples/deploy/: every `tradepost` command line in it is one the real CLI takes.

The Kubernetes manifests (container ``command`` + ``args``), the Dockerfile (``ENTRYPOINT`` +
``CMD``) and the Airflow DAG (each ``BashOperator``'s ``bash_command``, read from the file's
syntax tree: Airflow is not installed) are parsed, and each command line is parsed by the CLI's
own click commands, down to the subcommand: an unknown command or option, a missing value or an
option a command does not take fails here, not at 3 a.m. The project they mount is the example's
tradepost.yaml, which must load and compile with the repository's rule files, and every config
path a command names must be where the manifests mount it.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from ruamel.yaml import YAML

from cli.main import cli
from engine.project import load_project, open_marketplace

DEPLOY = Path(__file__).resolve().parent.parent / "examples" / "deploy"
ROOT = DEPLOY.parent.parent
CONFIG = "/project/tradepost.yaml"


def _found(document: Any, keys: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    """The items of every list under one of ``keys``, however deep it sits in a manifest (a
    CronJob's pod template, a Deployment's)."""
    if isinstance(document, dict):
        for key, value in document.items():
            if key in keys and isinstance(value, list):
                yield from value
            else:
                yield from _found(value, keys)
    elif isinstance(document, list):
        for item in document:
            yield from _found(item, keys)


def _containers(document: Any) -> Iterator[dict[str, Any]]:
    return _found(document, ("containers", "initContainers"))


def _manifests() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for document in YAML(typ="safe").load_all(path.read_text(encoding="utf-8")):
            if document:
                found.append((path.name, document))
    return found


def _k8s_commands() -> list[tuple[str, list[str]]]:
    commands = []
    for name, document in _manifests():
        for container in _containers(document):
            argv = [*container.get("command", []), *container.get("args", [])]
            commands.append((f"{name}:{container['name']}", [str(a) for a in argv]))
    return commands


def _dockerfile_command() -> list[str]:
    """``ENTRYPOINT`` + ``CMD`` of the Dockerfile, both in JSON (exec) form."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    parts = {}
    for instruction in ("ENTRYPOINT", "CMD"):
        match = re.search(rf"^{instruction}\s+(\[.*\])\s*$", text, re.MULTILINE)
        assert match, f"the Dockerfile has no {instruction} in exec form"
        parts[instruction] = json.loads(match.group(1))
    return [*parts["ENTRYPOINT"], *parts["CMD"]]


def _airflow_commands() -> list[tuple[str, list[str]]]:
    tree = ast.parse((DEPLOY / "airflow" / "tradepost_dag.py").read_text(encoding="utf-8"))
    commands = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "BashOperator":
            keywords = {k.arg: k.value for k in node.keywords}
            command = ast.literal_eval(keywords["bash_command"])
            task = ast.literal_eval(keywords["task_id"])
            commands.append((f"airflow:{task}", shlex.split(command)))
    return commands


def _every_command() -> list[tuple[str, list[str]]]:
    return [*_k8s_commands(), ("Dockerfile", _dockerfile_command()), *_airflow_commands()]


def _parse(argv: list[str]) -> list[str]:
    """Parse ``argv`` (``tradepost ...``) with the CLI's click commands as the shell would run it;
    the command path parsed (``["orders", "pull"]``). Raises click's usage errors."""
    assert argv and argv[0] == "tradepost", argv
    command: click.Command = cli
    context = command.make_context("tradepost", argv[1:])
    path: list[str] = []
    while isinstance(command, click.Group):
        name, sub, rest = command.resolve_command(context, [*context._protected_args, *context.args])
        assert name is not None and sub is not None
        path.append(name)
        context = sub.make_context(name, rest, parent=context)
        command = sub
    return path


def test_the_examples_run_the_commands_an_operator_expects() -> None:
    parsed = {where: " ".join(_parse(argv)) for where, argv in _every_command()}
    assert parsed == {
        "serve.yaml:serve": "serve",
        "worker.yaml:worker": "worker",
        "nightly.yaml:apply": "apply",
        "Dockerfile": "serve",
        "airflow:apply": "apply",
        "airflow:pull": "orders pull",
        "airflow:push": "orders push",
    }


@pytest.mark.parametrize("where,argv", _every_command(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_command_line_names_the_mounted_project(where: str, argv: list[str]) -> None:
    assert argv[argv.index("-c") + 1] == CONFIG, where


def test_a_wrong_option_would_be_caught() -> None:
    """The check itself: what it would say of a typo in a manifest."""
    with pytest.raises(click.UsageError, match="--shard"):
        _parse(["tradepost", "apply", "-c", CONFIG, "--shard", "8"])
    with pytest.raises(click.UsageError):
        _parse(["tradepost", "orders", "pul", "-c", CONFIG])


def test_the_manifests_mount_the_project_and_its_rule_files() -> None:
    """Every pod mounts the ConfigMap at /project with tradepost.yaml and each rule file it names
    (the rule files' own `include:` too) at the path tradepost.yaml gives."""
    config = YAML(typ="safe").load((DEPLOY / "tradepost.yaml").read_text(encoding="utf-8"))
    wanted = {"tradepost.yaml"} | {m["rules"] for m in config["marketplaces"].values()}
    wanted.add("rules/shared/tables.yaml")  # the rule files' include
    for name, document in _manifests():
        for container in _containers(document):
            mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
            assert mounts.get("project") == "/project", f"{name}: {container['name']}"
        volumes = {v["name"]: v for v in _found(document, ("volumes",))}
        if "project" in volumes:
            items = {item["path"] for item in volumes["project"]["configMap"]["items"]}
            assert items == wanted, name


def test_the_example_project_loads_and_compiles(tmp_path: Path) -> None:
    """tradepost.yaml as the pods see it: beside the repository's rule files."""
    shutil.copy(DEPLOY / "tradepost.yaml", tmp_path / "tradepost.yaml")
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    project = load_project(tmp_path / "tradepost.yaml")
    assert project.state_url.startswith("postgresql://")
    assert project.config.serve is not None
    for name in project.marketplace_names():
        assert open_marketplace(project, name).name == name
