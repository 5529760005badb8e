"""Deployment files: the Helm chart and the Kustomize manifests, linted, rendered and validated.

``helm_python`` (the helm-python-sdk wheel: Helm v4's own Go SDK behind a C ABI, no helm
binary needed) runs the real ``helm lint`` and ``helm template``, values.schema.json included.
``kubernetes_validate`` checks every rendered object, and every Kustomize manifest, against the
Kubernetes OpenAPI schemas offline, in strict mode (an unknown or misspelt field is an error),
for the oldest Kubernetes the chart supports and the newest the validator knows. The
ServiceMonitor is a CRD without a schema there, so its wiring is checked field by field.
Both packages are in the test extra; a missing one fails the tests instead of skipping them.
"""

from __future__ import annotations

import argparse
import itertools
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.adapters.routes import WEBHOOK_PREFIX
from service.errors import SettingsError
from service.settings import Settings, add_serve_flags, cli_values

try:
    import helm_python as helm
    import kubernetes_validate
except ImportError as exc:  # pragma: no cover - an incomplete install, not a skip
    raise ImportError(f"{exc}: install the test extra (`pip install -e '.[test]'`)") from exc

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "deploy" / "helm" / "switchboard"
KUSTOMIZE = ROOT / "deploy"
VERSION: str = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
IMAGE = f"switchboard:{VERSION}"
RELEASE, NAMESPACE = "sb", "contact-centre"
FULLNAME = f"{RELEASE}-switchboard"
# The chart's kubeVersion floor, and the newest release whose schemas the validator ships.
KUBE_VERSIONS = ("1.25", kubernetes_validate.latest_version())

Doc = dict[str, Any]


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a mapping with a repeated key (kubectl refuses it too)."""


def _no_duplicates(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    keys = [loader.construct_object(key, deep=deep) for key, _ in node.value]
    repeated = {key for key in keys if keys.count(key) > 1}
    if repeated:
        raise yaml.constructor.ConstructorError(None, None, f"repeated keys {repeated}", node.start_mark)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def parse(text: str) -> list[Doc]:
    """Every non-empty YAML document of ``text``; a repeated mapping key is an error."""
    return [doc for doc in yaml.load_all(text, Loader=_UniqueKeyLoader) if doc]


def render(values: dict[str, Any] | None = None) -> list[Doc]:
    """``helm template`` of the chart with ``values`` over values.yaml, as parsed objects.

    Every object is checked against the Kubernetes schemas first (AssertionError listing
    what they reject), so each variant a test renders is a valid one.
    """
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE)
    docs = [doc for path, text in sorted(manifests.items()) if path.endswith(".yaml") for doc in parse(text)]
    errors = schema_errors(docs)
    assert not errors, "\n".join(errors)
    return docs


def schema_errors(docs: list[Doc]) -> list[str]:
    """What the Kubernetes schemas reject in ``docs``, one line per problem (empty: all valid)."""
    errors = []
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD: checked in test_service_monitor_scrapes_the_service
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = exc.json_path
                errors.append(
                    f"{doc['kind']}/{doc['metadata']['name']} (k8s {version}) {where}: {exc.message}"
                )
            except kubernetes_validate.SchemaNotFoundError as exc:
                errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message}")
    return errors


def lint_problems(values: dict[str, Any] | None = None) -> list[str]:
    """``helm lint --strict`` findings of warning level or worse."""
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE)
    return [f"{m['path']}: {m['error']}" for m in report["messages"] if m["severity"] >= 2] + report["errors"]


def find(docs: list[Doc], kind: str, name: str = FULLNAME) -> Doc:
    matches = [doc for doc in docs if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} rendered"
    return matches[0]


def container(docs: list[Doc]) -> Doc:
    deployment = find(docs, "Deployment")
    containers: list[Doc] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(docs: list[Doc]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container(docs)["env"]}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


POLICY = (ROOT / "routing" / "default_policy.toml").read_text()
REASONS = (ROOT / "routing" / "default_reasons.toml").read_text()

EVERYTHING_ON: dict[str, Any] = {
    "replicaCount": 3,
    "secrets": {
        "values": {
            "SWITCHBOARD_API_KEYS": "crm=" + "0" * 64,
            "SWITCHBOARD_TWILIO_AUTH_TOKEN": "twilio-token",
            "SWITCHBOARD_CHATWOOT_SECRET": "chatwoot-secret",
            "SWITCHBOARD_CALLBACK_SECRET": "callback-secret",
        }
    },
    "redis": {"enabled": True, "persistence": {"enabled": True, "storageClass": "fast"}},
    "policy": {"content": POLICY},
    "reasons": {"content": REASONS},
    "ingress": {
        "enabled": True,
        "className": "nginx",
        "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "1m"},
        "hosts": [
            {"host": "switchboard.example.org", "paths": [{"path": "/v1/webhooks", "pathType": "Prefix"}]}
        ],
        "tls": [{"secretName": "switchboard-tls", "hosts": ["switchboard.example.org"]}],
    },
    "networkPolicy": {"enabled": True},
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 12},
    "podDisruptionBudget": {"enabled": True, "minAvailable": 2},
    "podAnnotations": {"example.org/team": "contact-centre"},
    "podLabels": {"example.org/tier": "backend"},
    "nodeSelector": {"kubernetes.io/arch": "amd64"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "cpu", "effect": "NoSchedule"}],
    "imagePullSecrets": [{"name": "registry"}],
}


@pytest.fixture(scope="module")
def defaults() -> list[Doc]:
    return render()


@pytest.fixture(scope="module")
def everything() -> list[Doc]:
    return render(EVERYTHING_ON)


# ---- the chart ---------------------------------------------------------------------------------


def test_chart_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "switchboard"
    assert chart["appVersion"] == VERSION


@pytest.mark.parametrize("values", [None, EVERYTHING_ON], ids=["defaults", "everything-on"])
def test_helm_lint_is_clean(values: dict[str, Any] | None) -> None:
    assert lint_problems(values) == []


def test_helm_lint_and_values_schema_catch_mistakes() -> None:
    # values.schema.json: a misspelt toggle and a wrongly typed value are refused, not ignored.
    assert any("ingres" in problem for problem in lint_problems({"ingres": {"enabled": True}}))
    with pytest.raises(helm.HelmValuesError, match="replicaCount"):
        render({"replicaCount": "two"})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"redis": {"enabled": False}}, "needs a shared store"),
        ({"redis": {"enabled": False}, "replicaCount": 1, "autoscaling": {"enabled": True}}, "shared store"),
        ({"redis": {"external": {"url": "redis://cache:6379/0"}}}, "both set"),
        ({"policy": {"content": POLICY, "existingConfigMap": "mine"}}, "not both"),
    ],
)
def test_contradictory_values_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmRenderError, match=message):
        render(values)


def test_defaults_render_valid_objects(defaults: list[Doc]) -> None:
    assert schema_errors(defaults) == []
    kinds = sorted((doc["kind"], doc["metadata"]["name"]) for doc in defaults)
    assert kinds == sorted(
        [
            ("Deployment", FULLNAME),
            ("Service", FULLNAME),
            ("ServiceAccount", FULLNAME),
            ("Secret", FULLNAME),
            ("PodDisruptionBudget", FULLNAME),
            ("Deployment", f"{FULLNAME}-redis"),
            ("Service", f"{FULLNAME}-redis"),
        ]
    )


def test_everything_on_renders_valid_objects(everything: list[Doc]) -> None:
    assert schema_errors(everything) == []
    kinds = {doc["kind"] for doc in everything}
    assert {
        "Ingress",
        "NetworkPolicy",
        "ServiceMonitor",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ConfigMap",
        "PersistentVolumeClaim",
    } <= kinds


def test_the_validator_really_validates(defaults: list[Doc]) -> None:
    misspelt = yaml.safe_load(yaml.safe_dump(find(defaults, "Deployment")))
    misspelt["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/readyz"
    assert any("'paht' was unexpected" in error for error in schema_errors([misspelt]))
    mistyped = yaml.safe_load(yaml.safe_dump(find(defaults, "Deployment")))
    mistyped["spec"]["replicas"] = "two"
    assert any("$.spec.replicas" in error for error in schema_errors([mistyped]))
    with pytest.raises(yaml.constructor.ConstructorError, match="repeated"):
        parse("metadata:\n  labels:\n    a: '1'\n    a: '2'\n")


def test_server_pods(defaults: list[Doc]) -> None:
    deployment = find(defaults, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    app = container(defaults)
    assert app["image"] == IMAGE
    assert deployment["spec"]["replicas"] == 2
    assert app["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert app["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert app["startupProbe"]["httpGet"]["path"] == "/healthz"
    for key in ("cpu", "memory"):
        assert app["resources"]["requests"][key] and app["resources"]["limits"][key]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    security = app["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    # The root filesystem is read-only: /data (SQLite, outbox) and /tmp are emptyDirs.
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in app["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/data"]] and "emptyDir" in volumes[mounts["/tmp"]]
    env = env_of(defaults)
    assert env["SWITCHBOARD_DATA_DIR"] == "/data"
    assert env["SWITCHBOARD_STORE"] == f"redis://{FULLNAME}-redis:6379/0"
    assert "SWITCHBOARD_POLICY" not in env and "SWITCHBOARD_REASONS" not in env  # bundled defaults
    assert app["envFrom"] == [{"secretRef": {"name": FULLNAME}}]
    service = find(defaults, "Service")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selects(service["spec"]["selector"], pod_labels)
    assert selects(deployment["spec"]["selector"]["matchLabels"], pod_labels)
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def pod_settings(docs: list[Doc]) -> Settings:
    """The ``Settings`` a server pod starts with: its args, its env and its Secrets' variables,
    read by the service's own reader (which refuses what the service would refuse)."""
    app = container(docs)
    secrets = {doc["metadata"]["name"]: doc.get("stringData", {}) for doc in docs if doc["kind"] == "Secret"}
    env: dict[str, str] = {}
    for source in app["envFrom"]:
        env.update(secrets[source["secretRef"]["name"]])
    for item in app["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secrets[ref["name"]][ref["key"]]
    assert app["args"][:2] == ["switchboard", "serve"]
    parser = argparse.ArgumentParser()
    add_serve_flags(parser)
    return Settings.from_env(env, cli=cli_values(parser.parse_args(app["args"][2:])))


def test_the_service_accepts_the_pod_configuration(defaults: list[Doc], everything: list[Doc]) -> None:
    settings = pod_settings(everything)
    assert (settings.host, settings.port, settings.workers) == ("0.0.0.0", 8000, 1)
    assert settings.store_url == f"redis://{FULLNAME}-redis:6379/0"
    assert settings.policy_path == Path("/config/policy/policy.toml")
    assert settings.reasons_path == Path("/config/reasons/reasons.toml")
    assert [key.name for key in settings.api_keys] == ["crm"]
    assert settings.adapters.public_base_url == "https://switchboard.example.org"
    assert settings.adapters.twilio_auth_token == "twilio-token"
    assert settings.adapters.chatwoot_secret == "chatwoot-secret"
    assert settings.adapters.callback_secret == "callback-secret"
    # The defaults carry no API key: the pods would refuse to start, as NOTES.txt warns.
    with pytest.raises(SettingsError, match="no API keys"):
        pod_settings(defaults)


def test_bundled_redis_is_not_selected_as_a_server(defaults: list[Doc]) -> None:
    redis = find(defaults, "Deployment", f"{FULLNAME}-redis")
    redis_labels = redis["spec"]["template"]["metadata"]["labels"]
    assert not selects(find(defaults, "Service")["spec"]["selector"], redis_labels)
    assert selects(find(defaults, "Service", f"{FULLNAME}-redis")["spec"]["selector"], redis_labels)
    pod = redis["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    assert redis["spec"]["replicas"] == 1 and redis["spec"]["strategy"]["type"] == "Recreate"


def test_secrets_from_values_or_an_existing_secret(everything: list[Doc]) -> None:
    secret = find(everything, "Secret")
    assert secret["stringData"] == EVERYTHING_ON["secrets"]["values"]
    annotations = find(everything, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert len(annotations["checksum/secret"]) == 64  # a changed Secret rolls the pods

    mine = render({"secrets": {"existingSecret": "switchboard-secrets"}})
    assert not [doc for doc in mine if doc["kind"] == "Secret"]
    assert container(mine)["envFrom"] == [{"secretRef": {"name": "switchboard-secrets"}}]


def test_external_redis_url_comes_from_a_secret() -> None:
    managed = render(
        {"redis": {"enabled": False, "external": {"existingSecret": "redis", "existingSecretKey": "url"}}}
    )
    assert not [doc for doc in managed if "redis" in doc["metadata"]["name"] and doc["kind"] != "Secret"]
    assert env_of(managed)["SWITCHBOARD_STORE"] == {"secretKeyRef": {"name": "redis", "key": "url"}}

    created = render({"redis": {"enabled": False, "external": {"url": "rediss://:pw@cache.example:6380/2"}}})
    assert schema_errors(created) == []
    url_secret = find(created, "Secret", f"{FULLNAME}-redis-url")
    assert url_secret["stringData"] == {"redis-url": "rediss://:pw@cache.example:6380/2"}
    assert env_of(created)["SWITCHBOARD_STORE"] == {
        "secretKeyRef": {"name": f"{FULLNAME}-redis-url", "key": "redis-url"}
    }


def test_policy_and_reasons_are_mounted_config_maps(everything: list[Doc]) -> None:
    env = env_of(everything)
    app = container(everything)
    pod = find(everything, "Deployment")["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    for setting, key, text in (
        ("SWITCHBOARD_POLICY", "policy.toml", POLICY),
        ("SWITCHBOARD_REASONS", "reasons.toml", REASONS),
    ):
        directory, _, file_name = env[setting].rpartition("/")
        assert file_name == key
        mount = next(mount for mount in app["volumeMounts"] if mount["mountPath"] == directory)
        assert mount["readOnly"] is True and "subPath" not in mount  # subPath mounts never update
        config_map = find(everything, "ConfigMap", volumes[mount["name"]]["configMap"]["name"])
        assert config_map["data"][key] == text  # the TOML arrives byte for byte

    theirs = render({"policy": {"existingConfigMap": "my-policy"}})
    assert not [doc for doc in theirs if doc["kind"] == "ConfigMap"]
    volumes = {v["name"]: v for v in find(theirs, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["policy"]["configMap"]["name"] == "my-policy"
    assert env_of(theirs)["SWITCHBOARD_POLICY"] == "/config/policy/policy.toml"


def test_ingress_lets_the_platforms_reach_the_webhooks(everything: list[Doc]) -> None:
    ingress = find(everything, "Ingress")
    service = find(everything, "Service")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"secretName": "switchboard-tls", "hosts": ["switchboard.example.org"]}]
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert path["path"] == WEBHOOK_PREFIX and path["pathType"] == "Prefix"  # where the routes are mounted
    assert path["backend"]["service"] == {"name": service["metadata"]["name"], "port": {"number": 80}}
    assert service["spec"]["ports"][0]["port"] == 80
    # Twilio signs the URL it calls: the service must know its public https address.
    assert env_of(everything)["SWITCHBOARD_PUBLIC_BASE_URL"] == "https://switchboard.example.org"


def test_network_policies(everything: list[Doc]) -> None:
    pod_labels = find(everything, "Deployment")["spec"]["template"]["metadata"]["labels"]
    redis_labels = find(everything, "Deployment", f"{FULLNAME}-redis")["spec"]["template"]["metadata"][
        "labels"
    ]
    server = find(everything, "NetworkPolicy")
    assert selects(server["spec"]["podSelector"]["matchLabels"], pod_labels)
    assert not selects(server["spec"]["podSelector"]["matchLabels"], redis_labels)
    (ingress,) = server["spec"]["ingress"]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    namespaces = [
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for peer in ingress["from"]
        if "namespaceSelector" in peer
    ]
    assert namespaces == ["ingress-nginx", "monitoring"]  # the ingress controller, Prometheus
    egress = server["spec"]["egress"]
    assert any(rule.get("ports", [{}])[0].get("port") == 53 for rule in egress)
    to_redis = [
        rule
        for rule in egress
        if rule.get("to") and selects(rule["to"][0]["podSelector"]["matchLabels"], redis_labels)
    ]
    assert to_redis and to_redis[0]["ports"] == [{"port": 6379, "protocol": "TCP"}]
    redis = find(everything, "NetworkPolicy", f"{FULLNAME}-redis")
    assert selects(redis["spec"]["podSelector"]["matchLabels"], redis_labels)
    (allowed,) = redis["spec"]["ingress"]
    assert selects(allowed["from"][0]["podSelector"]["matchLabels"], pod_labels)
    assert "egress" not in redis["spec"] and "Egress" in redis["spec"]["policyTypes"]  # Redis calls no one


def test_service_monitor_scrapes_the_service(everything: list[Doc]) -> None:
    monitor = find(everything, "ServiceMonitor")
    service = find(everything, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}


def test_autoscaler_owns_the_replica_count(everything: list[Doc]) -> None:
    deployment = find(everything, "Deployment")
    hpa = find(everything, "HorizontalPodAutoscaler")
    assert "replicas" not in deployment["spec"]  # else every upgrade resets what the HPA chose
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": FULLNAME}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    pdb = find(everything, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 2
    assert selects(
        pdb["spec"]["selector"]["matchLabels"], deployment["spec"]["template"]["metadata"]["labels"]
    )
    claim = find(everything, "PersistentVolumeClaim", f"{FULLNAME}-redis")
    assert claim["spec"]["storageClassName"] == "fast"


def test_single_pod_without_redis() -> None:
    # One pod on its own SQLite in /data: valid, and no PodDisruptionBudget to block drains.
    docs = render({"replicaCount": 1, "redis": {"enabled": False}})
    assert "SWITCHBOARD_STORE" not in env_of(docs)
    assert {doc["kind"] for doc in docs} == {"Deployment", "Service", "ServiceAccount", "Secret"}
    assert find(docs, "Deployment")["spec"]["replicas"] == 1


def test_image_tag_override() -> None:
    docs = render({"image": {"repository": "registry.example/switchboard", "tag": "0.1.0-rc1"}})
    assert container(docs)["image"] == "registry.example/switchboard:0.1.0-rc1"


# ---- the Kustomize manifests, compose and the README -------------------------------------------


def kustomize_docs() -> Iterator[tuple[str, Doc]]:
    kustomization = yaml.safe_load((KUSTOMIZE / "kustomization.yaml").read_text())
    for name in [*kustomization["resources"], "secret.example.yaml"]:
        for doc in parse((KUSTOMIZE / name).read_text()):
            yield name, doc


def test_kustomize_manifests_validate() -> None:
    docs = [doc for _, doc in kustomize_docs()]
    assert len(docs) >= 8
    assert schema_errors(docs) == []


def test_kustomize_namespace_comes_first_and_image_is_the_package_version() -> None:
    kustomization = yaml.safe_load((KUSTOMIZE / "kustomization.yaml").read_text())
    assert kustomization["resources"][0] == "namespace.yaml"
    namespace = parse((KUSTOMIZE / "namespace.yaml").read_text())[0]
    assert namespace["metadata"]["name"] == kustomization["namespace"]
    deployment = next(doc for _, doc in kustomize_docs() if doc["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["switchboard"]["image"] == IMAGE


def readme_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Containers and Kubernetes")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def test_readme_builds_the_tag_the_manifests_run() -> None:
    section = readme_section()
    assert f"docker build -t {IMAGE} ." in section
    assert "switchboard:latest" not in (ROOT / "README.md").read_text()
    for line in section.splitlines():
        if line.startswith("docker run"):
            assert line.rstrip().split("#")[0].split()[-1] == IMAGE, line


def test_readme_creates_the_namespace_before_the_secret() -> None:
    section = readme_section()
    kustomization = yaml.safe_load((KUSTOMIZE / "kustomization.yaml").read_text())
    deployment = next(doc for _, doc in kustomize_docs() if doc["kind"] == "Deployment")
    secret = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["secretRef"]["name"]
    namespace = section.index("kubectl apply -f deploy/namespace.yaml")
    create_secret = section.index(f"kubectl -n {kustomization['namespace']} create secret generic {secret}")
    apply = section.index("kubectl apply -k deploy/")
    assert namespace < create_secret < apply
    assert "helm install" in section and "deploy/helm/switchboard" in section
    helm_install = section.index("helm install")
    assert "--create-namespace" in section[helm_install : section.index("\n```", helm_install)]


def test_readme_helm_install_command_renders(tmp_path: Path) -> None:
    """The README's `helm install` flags, applied as Helm applies them, give a valid release."""
    section = readme_section()
    start = section.index("helm install")
    command = shlex.split(section[start : section.index("\n```", start)].replace("\\\n", " "))
    assert command[:4] == ["helm", "install", "switchboard", "deploy/helm/switchboard"]
    values: dict[str, Any] = {}
    assignments = []
    for flag, argument in itertools.pairwise(command):
        if flag == "--set":
            assignments.append(argument)
        elif flag == "--set-file":
            key, _, _file = argument.partition("=")
            assert key == "policy.content"
            values["policy"] = {"content": POLICY}
    values = merge(helm.parse_set_string(",".join(assignments)), values)
    docs = render(values)
    assert schema_errors(docs) == []
    assert find(docs, "Ingress")["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/v1/webhooks"
    assert container(docs)["image"] == f"registry.example.com/switchboard:{VERSION}"
    assert set(find(docs, "Secret")["stringData"]) == {
        "SWITCHBOARD_API_KEYS",
        "SWITCHBOARD_TWILIO_AUTH_TOKEN",
        "SWITCHBOARD_CHATWOOT_SECRET",
    }
    assert env_of(docs)["SWITCHBOARD_PUBLIC_BASE_URL"] == "https://switchboard.example.com"


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` merged in, nested mappings key by key."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged
