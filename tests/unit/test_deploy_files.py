"""Static checks of the deployment files: compose.yaml, the Dockerfiles and Asterisk's base config.

There is no Docker engine in CI, so the wiring is verified by reading the files: a missing
health check, an unpinned image, a published AMI port, an over-privileged AMI user or a PBX_*
typo fails here instead of in a customer's first `docker compose up`.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import re
import socket
import stat
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from pbx_core.ami.client import CONTROL_EVENTS, HANDLED_EVENTS
from pbx_core.callbacks.core.events import CALLBACK_EVENTS
from pbx_core.config import VARIABLES, parse_ami_url

ROOT = Path(__file__).resolve().parents[2]
ASTERISK_CONFIG = ROOT / "asterisk-config"
GENERATED_DIR = "/etc/asterisk/pbx-core"
LONG_RUNNING = ("asterisk", "redis", "postgres", "bridge", "web")
# image:tag naming one release (major.minor.patch; PostgreSQL's releases are major.minor), with an
# optional -variant and digest. A floating tag such as redis:7 or redis:7.4 does not match.
PINNED_IMAGE = re.compile(r"^(postgres:\d+\.\d+|[\w./-]+:\d+\.\d+\.\d+)(-[\w.-]+)?(@sha256:[0-9a-f]{64})?$")
DEFAULT = re.compile(r"\$\{(\w+):?-([^}]*)\}")
SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|KEY", re.IGNORECASE)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def parse_conf(text: str) -> dict[str, list[tuple[str, str]]]:
    """Asterisk config -> {section: [(key, value), ...]}; keeps duplicates (eventfilter, require)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("#"):
            assert current is not None, f"directive outside a section: {raw!r}"
            current.append(("#" + line[1:].split()[0], line.split(None, 1)[1]))
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        assert current is not None, f"setting outside a section: {raw!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not a key = value line: {raw!r}"
        current.append((key.strip(), value.lstrip(">").strip()))
    return sections


def conf(name: str) -> dict[str, list[tuple[str, str]]]:
    return parse_conf((ASTERISK_CONFIG / name).read_text())


def one(items: list[tuple[str, str]], key: str) -> str:
    values = [v for k, v in items if k == key]
    assert len(values) == 1, f"expected exactly one {key!r}, got {values}"
    return values[0]


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "use the mapping form of environment"
    return {k: str(v) for k, v in env.items()}


def ports_of(service: dict[str, Any]) -> list[str]:
    return [str(p) for p in service.get("ports", [])]


def asterisk_ip(services: dict[str, Any]) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(services["asterisk"]["networks"]["pbx"]["ipv4_address"])


def load_script(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------- compose


def test_stack_has_every_service(services: dict[str, Any]) -> None:
    assert set(services) == {"asterisk", "redis", "postgres", "migrate", "bridge", "web"}


def test_migrate_runs_the_schema_upgrade_once_before_bridge_and_web(services: dict[str, Any]) -> None:
    migrate = services["migrate"]
    assert migrate["command"] == ["pbx-core", "db", "upgrade"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("bridge", "web"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_every_long_running_service_has_a_health_check(services: dict[str, Any]) -> None:
    for name in LONG_RUNNING:
        check = services[name].get("healthcheck")
        assert check and not check.get("disable"), f"{name} has no health check"
        assert check["test"][0] in ("CMD", "CMD-SHELL") and len(check["test"]) > 1, name


def test_dependencies_wait_for_health_not_just_start(services: dict[str, Any]) -> None:
    for name, service in services.items():
        deps = service.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on must state a condition"
        for dep, spec in deps.items():
            expected = "service_completed_successfully" if dep == "migrate" else "service_healthy"
            assert spec["condition"] == expected, f"{name} -> {dep}"
            if expected == "service_healthy":
                assert dep in LONG_RUNNING


def test_bridge_waits_for_asterisk_and_redis(services: dict[str, Any]) -> None:
    assert {"asterisk", "redis", "migrate"} <= set(services["bridge"]["depends_on"])
    assert {"redis", "postgres", "migrate"} <= set(services["web"]["depends_on"])


def test_images_are_pinned_to_exact_versions(services: dict[str, Any]) -> None:
    for name, service in services.items():
        image = service.get("image", "")
        assert "latest" not in image, name
        if "build" in service:  # built here: the tag names our own release
            assert re.fullmatch(r"[\w.-]+:\d+\.\d+\.\d+", image), f"{name}: {image}"
        else:
            assert PINNED_IMAGE.match(image), f"{name}: {image!r} is not pinned to an exact version"


def test_pbx_environment_uses_only_known_variables(services: dict[str, Any]) -> None:
    known = {var.name for var in VARIABLES}
    for name in ("migrate", "bridge", "web"):
        env = env_of(services[name])
        unknown = {k for k in env if k.startswith("PBX_")} - known
        assert not unknown, f"{name}: unknown settings {unknown} (typo?)"
        assert env["PBX_REDIS_URL"] == "redis://redis:6379/0"
        assert env["PBX_DATABASE_URL"].startswith("postgresql://pbx:")
        assert env["PBX_DATABASE_URL"].endswith("@postgres:5432/pbx")
        assert env["PBX_ASTERISK_CONFIG_DIR"] == GENERATED_DIR


def test_ami_url_points_at_the_asterisk_service_and_manager_user(services: dict[str, Any]) -> None:
    ami = parse_ami_url(env_of(services["bridge"])["PBX_AMI_URL"])
    assert (ami.username, ami.host, ami.port) == ("pbx-core", "asterisk", 5038)
    assert "pbx-core" in conf("manager.conf")
    # The same secret variable feeds Asterisk's entrypoint and the bridge's URL.
    assert env_of(services["asterisk"])["AMI_SECRET"] == ami.secret


def test_web_listens_on_all_interfaces_inside_its_container(services: dict[str, Any]) -> None:
    env = env_of(services["web"])
    assert env["PBX_HTTP_HOST"] == "0.0.0.0"
    assert env["PBX_HTTP_PORT"] == "8000"
    assert ports_of(services["web"]) == ["${PBX_WEB_BIND:-127.0.0.1}:${PBX_WEB_PORT:-8000}:8000"]


def test_web_health_check_needs_only_the_status_and_metrics_need_a_token(services: dict[str, Any]) -> None:
    """/healthz says only ok (200) or not (503) and /metrics answers outside the container only
    with PBX_METRICS_TOKEN: the checks and the settings must not expect more."""
    for check in (" ".join(services["web"]["healthcheck"]["test"]),
                  " ".join(instructions(dockerfile("Dockerfile"), "HEALTHCHECK"))):
        assert "/healthz" in check and ".status == 200" in check, check
        assert "json" not in check and "redis" not in check, check  # no detail to read any more
        assert "/metrics" not in check
    env = env_of(services["web"])
    assert env["PBX_METRICS_TOKEN"] == "${PBX_METRICS_TOKEN:-}"  # from .env, never written here
    assert env["PBX_TRUSTED_PROXIES"] == "${PBX_TRUSTED_PROXIES:-}"


def test_secrets_are_never_hard_coded(compose: dict[str, Any]) -> None:
    text = (ROOT / "compose.yaml").read_text()
    for var, default in DEFAULT.findall(text):
        if SECRET_NAME.search(var) and default:
            assert default.startswith("dev-") and default.endswith("-change-me"), (
                f"${{{var}}} has a default {default!r} that is not clearly a development value"
            )
    for name, service in compose["services"].items():
        for key, value in env_of(service).items():
            if SECRET_NAME.search(key) and value:
                assert value.startswith("${"), f"{name}: {key} is hard-coded"


def test_ami_is_never_published(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for port in ports_of(service):
            assert "5038" not in port, f"{name} publishes AMI: {port}"


def test_plain_websocket_is_published_on_loopback_only(services: dict[str, Any]) -> None:
    ports = ports_of(services["asterisk"])
    assert "8089:8089/tcp" in ports
    assert [p for p in ports if "8088" in p] == ["127.0.0.1:8088:8088/tcp"]


def test_asterisk_gets_every_base_file_read_only(services: dict[str, Any]) -> None:
    volumes = services["asterisk"]["volumes"]
    base_files = sorted(p.name for p in ASTERISK_CONFIG.glob("*.conf"))
    assert {"manager.conf", "http.conf", "modules.conf"} <= set(base_files)
    for name in base_files:
        assert f"./asterisk-config/{name}:/etc/asterisk/{name}:ro" in volumes, f"{name} is not mounted"


def test_generated_config_is_shared_written_by_web_read_by_asterisk(services: dict[str, Any]) -> None:
    assert f"asterisk-generated:{GENERATED_DIR}:ro" in services["asterisk"]["volumes"]
    assert f"asterisk-generated:{GENERATED_DIR}" in services["web"]["volumes"]
    assert env_of(services["web"])["PBX_ASTERISK_CONFIG_DIR"] == GENERATED_DIR


# ----------------------------------------------------------------------------------- Dockerfiles


def dockerfile(path: str) -> str:
    return (ROOT / path).read_text()


def instructions(text: str, keyword: str) -> list[str]:
    joined = re.sub(r"\\\n", " ", text)
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.startswith(keyword + " ")]


def test_pbx_core_image_is_multi_stage_slim_pinned_and_non_root() -> None:
    text = dockerfile("Dockerfile")
    assert "latest" not in text
    (base,) = [a.split("=", 1)[1] for a in instructions(text, "ARG") if a.startswith("PYTHON_IMAGE=")]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), base
    assert len(instructions(text, "FROM")) >= 2
    users = instructions(text, "USER")
    assert users and users[-1] not in ("root", "0")
    assert "/healthz" in " ".join(instructions(text, "HEALTHCHECK"))
    assert instructions(text, "WORKDIR")[-1] == "/app"
    assert instructions(text, "CMD")[-1].startswith('["pbx-core", "web"')
    installs = " ".join(i for i in instructions(text, "RUN") if "pip" in i)
    assert "[test]" not in installs and "-e " not in installs


def test_asterisk_image_is_pinned_to_asterisk_22_and_non_root() -> None:
    text = dockerfile("docker/asterisk/Dockerfile")
    (base,) = [a.split("=", 1)[1] for a in instructions(text, "ARG") if a.startswith("ASTERISK_IMAGE=")]
    assert re.fullmatch(r"andrius/asterisk:22\.\d+\.\d+_debian-\w+(@sha256:[0-9a-f]{64})?", base), base
    assert instructions(text, "USER")[-1] == "asterisk"
    assert "core waitfullybooted" in " ".join(instructions(text, "HEALTHCHECK"))


# ----------------------------------------------------------------------------- Asterisk config


def test_manager_defaults_to_a_single_host_and_takes_the_deployment_network_at_start(
    compose: dict[str, Any],
) -> None:
    """No address of one particular network is baked in (a wrong bindaddr leaves Asterisk
    without AMI, quietly): the file binds loopback, and the deployment's bind address comes from
    a file the entrypoint writes, #tryincluded after it (a later bindaddr wins)."""
    general = conf("manager.conf")["general"]
    assert one(general, "enabled") == "yes"
    assert one(general, "webenabled") == "no"
    assert one(general, "bindaddr") == "127.0.0.1"
    assert general.index(("bindaddr", "127.0.0.1")) < general.index(
        ("#tryinclude", "/var/run/asterisk/manager-network.conf"))
    assert one(general, "displayconnects") == "no"
    assert one(general, "timestampevents") == "yes"  # events carry the PBX's clock
    env = env_of(compose["services"]["asterisk"])
    subnet = ipaddress.IPv4Network(compose["networks"]["pbx"]["ipam"]["config"][0]["subnet"])
    assert ipaddress.IPv4Network(env["AMI_PERMIT"]) == subnet and subnet.is_private
    assert asterisk_ip(compose["services"]) in subnet
    assert env["AMI_BIND_ADDRESS"] == "0.0.0.0"  # inside the container; 5038 is never published


def test_manager_user_has_least_privilege_and_an_acl() -> None:
    user = conf("manager.conf")["pbx-core"]
    read = set(one(user, "read").split(","))
    write = set(one(user, "write").split(","))
    # agent: queue events; call: Hangup / OriginateResponse; user: the callback UserEvents;
    # system: the Reload event after which the bridge resyncs (read only: events, no actions).
    assert read == {"agent", "call", "user", "system"}
    # agent: QueueAdd/Remove/Pause/Penalty; originate: callbacks; call: Setvar/Status/Hangup;
    # command: module reloads; reporting: DBGet of the callback dialplan's markers (read-only).
    assert write == {"agent", "originate", "call", "command", "reporting"}
    assert not read & {"all", "config", "dialplan"}
    assert not write & {"all", "system", "config", "dialplan"}
    assert [v for k, v in user if k == "deny"] == ["0.0.0.0/0.0.0.0"]
    assert [v for k, v in user if k == "permit"] == ["127.0.0.1/255.255.255.255"]
    assert ("#tryinclude", "/var/run/asterisk/manager-acl.conf") in user
    # The secret is not in the file: it is included from the runtime directory.
    assert not [v for k, v in user if k == "secret"]
    assert ("#include", "/var/run/asterisk/manager-secret.conf") in user


def test_the_asterisk_readme_states_the_permissions_manager_conf_grants() -> None:
    user = conf("manager.conf")["pbx-core"]
    readme = (ASTERISK_CONFIG / "README.md").read_text()
    read, write = one(user, "read"), one(user, "write")
    assert f"read `{read}`" in readme, f"asterisk-config/README.md must say read `{read}`"
    assert f"write `{write}`" in readme, f"asterisk-config/README.md must say write `{write}`"
    assert "timestampevents" in readme


def test_manager_event_filter_passes_every_event_the_bridge_handles() -> None:
    user = conf("manager.conf")["pbx-core"]
    names = set()
    for key, _ in user:
        match = re.fullmatch(r"eventfilter\(action\(include\),name\((\w+)\)\)", key)
        if key.startswith("eventfilter"):
            assert match, f"unexpected filter {key!r}"
            names.add(match.group(1))
    missing = (HANDLED_EVENTS | CALLBACK_EVENTS | CONTROL_EVENTS) - names
    assert not missing, f"manager.conf would drop events the bridge or the worker needs: {sorted(missing)}"


def test_http_serves_websockets_with_tls_and_plain_ws_on_loopback_by_default() -> None:
    general = conf("http.conf")["general"]
    assert one(general, "enabled") == "yes"
    assert one(general, "bindaddr") == "127.0.0.1"
    assert one(general, "bindport") == "8088"
    assert one(general, "tlsenable") == "yes"
    assert one(general, "tlsbindaddr") == "0.0.0.0:8089"
    assert one(general, "tlscertfile").startswith("/etc/asterisk/keys/")
    assert one(general, "tlsprivatekey").startswith("/etc/asterisk/keys/")
    assert one(general, "enablestatic") == "no"
    assert general[-1] == ("#tryinclude", "/var/run/asterisk/http-network.conf")


def test_modules_load_only_a_list_that_holds_what_a_call_centre_needs() -> None:
    mods = conf("modules.conf")["modules"]
    assert one(mods, "autoload") == "no"
    required = {v for k, v in mods if k == "require"}
    loaded = required | {v for k, v in mods if k == "load"}
    assert {
        "chan_pjsip.so", "res_pjsip.so", "res_pjsip_transport_websocket.so", "res_http_websocket.so",
        "res_srtp.so", "pbx_config.so", "app_queue.so", "app_voicemail.so", "res_musiconhold.so",
        "app_dial.so", "app_playback.so", "app_read.so", "format_wav.so", "format_gsm.so",
    } <= required
    assert not [k for k, _ in mods if k == "noload"]  # nothing loads that is not listed
    # Removed in Asterisk 21, or never wanted: ARI/Stasis (their absence once caused 17 errors),
    # the wizard (pjsip_wizard.conf missing on every reload).
    assert not {"chan_sip.so", "chan_skinny.so", "chan_mgcp.so", "res_ari.so", "res_stasis.so",
                "res_pjsip_config_wizard.so"} & loaded


# Where Asterisk 22 registers each dialplan application and function pbx-core's dialplans use.
# None: built into the core (main/pbx_builtins.c, pbx_variables.c, or the $[...] expression
# parser). A name missing here fails the test below: look it up, add it, and load its module.
DIALPLAN_PROVIDERS: dict[str, str | None] = {
    "Answer": None, "Background": None, "Goto": None, "GotoIf": None, "GotoIfTime": None,
    "Hangup": None, "NoOp": None, "SayDigits": None, "SayNumber": None, "Set": None,
    "WaitExten": None, "Wait": None, "ROUND": None,
    "DBdeltree": "app_db.so", "Dial": "app_dial.so", "ExecIf": "app_exec.so",
    "Gosub": "app_stack.so", "Return": "app_stack.so", "Playback": "app_playback.so",
    "Queue": "app_queue.so", "Read": "app_read.so", "SayUnixTime": "app_sayunixtime.so",
    "UserEvent": "app_userevent.so", "VoiceMail": "app_voicemail.so",
    "VoiceMailMain": "app_voicemail.so",
    "CALLERID": "func_callerid.so", "CHANNEL": "func_channel.so", "CUT": "func_cut.so",
    "DB": "func_db.so", "DIALPLAN_EXISTS": "func_dialplan.so", "FILTER": "func_strings.so",
    "GLOBAL": "func_global.so", "IF": "func_logic.so", "IMPORT": "func_logic.so",
    "LEN": "func_strings.so", "STRFTIME": "func_strings.so",
    "PJSIP_DIAL_CONTACTS": "chan_pjsip.so", "QUEUE_GET_CHANNEL": "app_queue.so",
    "QUEUE_WAITING_COUNT": "app_queue.so",
}
_PRIORITY_APP = re.compile(r"^\s*(?:exten\s*=>\s*[^,]*,|same\s*=>\s*)[^,]*,\s*([A-Za-z]\w*)\(")
_NESTED_APP = re.compile(r"\?\s*([A-Z][a-z]\w*)\(")  # ExecIf(cond?App(...))
_FUNCTION = re.compile(r"\b([A-Z][A-Z0-9_]+)\(")


def test_every_dialplan_application_and_function_has_its_module_loaded() -> None:
    """A real Asterisk 22 showed it: with func_db, app_db, func_cut and app_sayunixtime missing
    from modules.conf, every callback dial failed at "Function DB not registered". Read what the
    dialplans call (the shipped one and the rendered golden tenants, callbacks included)."""
    mods = conf("modules.conf")["modules"]
    loaded = {v for k, v in mods if k in ("require", "load")}
    dialplans = [ASTERISK_CONFIG / "extensions.conf",
                 *sorted((ROOT / "tests" / "golden").glob("*/extensions.conf"))]
    used: set[str] = set()
    for path in dialplans:
        for line in path.read_text().splitlines():
            code = line.split(";", 1)[0]
            used.update(_PRIORITY_APP.findall(code), _NESTED_APP.findall(code), _FUNCTION.findall(code))
    assert {"Queue", "DB", "CUT", "SayUnixTime", "DBdeltree", "Dial"} <= used  # the scan reads them
    unknown = sorted(used - DIALPLAN_PROVIDERS.keys())
    assert not unknown, f"dialplan uses {unknown}: add their Asterisk modules to DIALPLAN_PROVIDERS"
    missing = {name: module for name in used
               if (module := DIALPLAN_PROVIDERS[name]) is not None and module not in loaded}
    assert not missing, f"modules.conf does not load what the dialplan calls: {missing}"


def test_asterisk_config_is_a_complete_configuration() -> None:
    """Every file a module pbx-core loads reads (or Asterisk's core reads) is in asterisk-config/,
    so nothing depends on an image's sample files."""
    names = {p.name for p in ASTERISK_CONFIG.glob("*.conf")}
    assert {"musiconhold.conf", "indications.conf", "logger.conf", "rtp.conf", "features.conf",
            "ccss.conf", "manager.conf", "http.conf", "modules.conf", "pjsip.conf", "extensions.conf",
            "queues.conf", "voicemail.conf"} <= names
    for name in names:
        assert (ASTERISK_CONFIG / name).read_text().startswith(";"), f"{name} should say what it is for"
    assert one(conf("rtp.conf")["general"], "rtpstart") == "10000"
    assert one(conf("musiconhold.conf")["default"], "directory") == "moh"
    assert one(conf("indications.conf")["general"], "country") in conf("indications.conf")


# -------------------------------------------------------------------------- Asterisk entrypoint

ENTRYPOINT = ROOT / "docker" / "asterisk" / "entrypoint.sh"


def run_entrypoint(
    tmp_path: Path, secret: str | None, **more: str
) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "ASTERISK_RUN_DIR": str(tmp_path / "run"),
           "AMI_PERMIT": "172.30.57.0/24", **more}
    if secret is not None:
        env["AMI_SECRET"] = secret
    return subprocess.run(
        ["sh", str(ENTRYPOINT), "sh", "-c", 'echo "started; AMI_SECRET=${AMI_SECRET:-unset}"'],
        env=env, capture_output=True, text=True, check=False,
    )


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        (None, "AMI_SECRET is not set"),
        ("", "AMI_SECRET is not set"),
        ("short-secret", "at least 16 characters"),
        ("good-length-but;comment", "may only contain"),
        ("line\nsecret = other", "may only contain"),
    ],
)
def test_entrypoint_refuses_a_missing_or_unsafe_secret(
    tmp_path: Path, secret: str | None, message: str
) -> None:
    result = run_entrypoint(tmp_path, secret)
    assert result.returncode == 2
    assert message in result.stderr
    assert not (tmp_path / "run" / "manager-secret.conf").exists()


def test_entrypoint_writes_the_secret_privately_and_hides_it_from_asterisk(tmp_path: Path) -> None:
    result = run_entrypoint(tmp_path, "dev-ami-secret-change-me")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "started; AMI_SECRET=unset"
    written = tmp_path / "run" / "manager-secret.conf"
    assert written.read_text() == "secret = dev-ami-secret-change-me\n"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    parsed = parse_conf("[pbx-core]\n" + written.read_text())["pbx-core"]
    assert parsed == [("secret", "dev-ami-secret-change-me")]


# ------------------------------------------------------------------------ bridge health check

HEALTH = load_script(ROOT / "docker" / "healthcheck_bridge.py")
TABLE_HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"


def tcp_line(remote_port: int, state: str) -> str:
    return f"   0: 0A1E390B:A2C4 0A1E390A:{remote_port:04X} {state} 00000000:00000000 00:00000000 0  1000\n"


BRIDGE_ENV = {"PBX_AMI_URL": "ami://pbx-core:s@asterisk:5038", "PBX_REDIS_URL": "redis://redis:6379/0"}


def test_bridge_is_healthy_with_ami_and_redis_connections() -> None:
    table = TABLE_HEADER + tcp_line(5038, "01") + tcp_line(6379, "01")
    assert HEALTH.check(BRIDGE_ENV, [table]) == []


def test_bridge_without_ami_connection_is_unhealthy_and_says_why() -> None:
    table = TABLE_HEADER + tcp_line(5038, "02") + tcp_line(6379, "01")  # SYN_SENT: still connecting
    assert HEALTH.check(BRIDGE_ENV, [table]) == ["no connection to Asterisk AMI (PBX_AMI_URL) (port 5038)"]


def test_bridge_health_needs_an_ami_url() -> None:
    assert HEALTH.check({}, [TABLE_HEADER]) == ["PBX_AMI_URL is not set: the bridge cannot run"]


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_bridge_health_reads_real_established_sockets() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            peer, _ = server.accept()
            with peer:
                tables = [Path("/proc/net/tcp").read_text()]
                assert port in HEALTH.remote_ports_established(tables)
                assert client.fileno() >= 0
    assert HEALTH.wanted_ports({"PBX_AMI_URL": f"ami://u:s@h:{port}"}) == {"Asterisk AMI (PBX_AMI_URL)": port}


@pytest.mark.parametrize("service", ["bridge", "web"])
def test_service_commands_parse_with_the_real_cli(services: dict[str, Any], service: str) -> None:
    from pbx_core.cli import build_parser

    program, *argv = services[service]["command"]
    assert program == "pbx-core"
    args = build_parser(only=argv[0]).parse_args(argv)
    assert callable(args.func), f"`pbx-core {' '.join(argv)}` is not a runnable command"
    if service == "web":
        assert str(args.wallboard_dir) == "/app/wallboard"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"AMI_PERMIT": ""}, "AMI_PERMIT is not set"),
        ({"AMI_PERMIT": "172.30.57.0/24;x"}, "AMI_PERMIT must be an IP address or network"),
        ({"AMI_PERMIT": "10.0.0.0/8\npermit = 0.0.0.0/0"}, "AMI_PERMIT must be an IP address or network"),
        ({"AMI_BIND_ADDRESS": "host name"}, "AMI_BIND_ADDRESS must be an IP address"),
        ({"HTTP_BIND_ADDRESS": "0.0.0.0 ; x"}, "HTTP_BIND_ADDRESS must be an IP address"),
    ],
)
def test_entrypoint_refuses_missing_or_unsafe_network_settings(
    tmp_path: Path, settings: dict[str, str], message: str
) -> None:
    result = run_entrypoint(tmp_path, "dev-ami-secret-change-me", **settings)
    assert result.returncode == 2
    assert message in result.stderr
    assert not (tmp_path / "run" / "manager-acl.conf").exists()


def test_entrypoint_writes_the_network_settings_manager_and_http_include(tmp_path: Path) -> None:
    result = run_entrypoint(tmp_path, "dev-ami-secret-change-me", AMI_PERMIT="172.30.57.0/24, 10.1.0.0/16",
                            AMI_BIND_ADDRESS="172.30.57.10")
    assert result.returncode == 0, result.stderr
    run = tmp_path / "run"
    assert parse_conf("[general]\n" + (run / "manager-network.conf").read_text())["general"] == [
        ("bindaddr", "172.30.57.10")]
    assert parse_conf("[pbx-core]\n" + (run / "manager-acl.conf").read_text())["pbx-core"] == [
        ("permit", "172.30.57.0/24"), ("permit", "10.1.0.0/16")]
    assert parse_conf("[general]\n" + (run / "http-network.conf").read_text())["general"] == [
        ("bindaddr", "0.0.0.0")]
    # What the base files include is what the entrypoint writes.
    includes = {v for items in conf("manager.conf").values() for k, v in items if k.startswith("#")}
    includes |= {v for items in conf("http.conf").values() for k, v in items if k.startswith("#")}
    assert {f"/var/run/asterisk/{p.name}" for p in run.iterdir()} == includes
