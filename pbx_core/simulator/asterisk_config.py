"""The simulated Asterisk's configuration: what it loaded from its config directory, per module,
and the CLI commands that show it (through the AMI ``Command`` action).

It behaves the way Asterisk 22's modules do on ``module reload`` (main/cli.c prints the outcome):

* A parse error inside an ``#include``d file (every tenant file is one) does not reject anything:
  the file is read up to its bad line, the rest of it is lost, and the module loads what it got
  (see :func:`pbx_core.asterisk.files.parse_config`). For app_queue that means a queue whose
  section came after the bad line is gone from the file: it is destroyed, and when a later
  reload brings it back it is a new queue, without the dynamic members the old one had
  (apps/app_queue.c ``reload_queues``: unfound queues are killed; ``reload_single_queue``
  allocates a fresh one). The reload reports success throughout, which is why the applier checks
  ``pjsip show endpoints`` / ``queue show`` / ``dialplan show`` afterwards.
* A top-level file Asterisk cannot parse: ``res_pjsip.so`` and ``app_queue.so`` log it and keep
  their old objects, and still report success; ``pbx_config.so`` declines, reported as "The module
  'pbx_config.so' reported a reload failure", and keeps the old dialplan; ``app_voicemail.so`` is
  reported as a reload failure (a simplification).

Only what the provisioning tests need is modelled: endpoints (with their auth and AOR), queues
(they become queues of the simulated world, so QueueAdd/QueueStatus work on them), dialplan
contexts with their extensions and includes, and voicemail contexts.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..asterisk.files import ConfigError, Section, parse_config

log = logging.getLogger(__name__)

# module -> (config file, does an unreadable file fail the reload?)
MODULES: dict[str, tuple[str, bool]] = {
    "res_pjsip.so": ("pjsip.conf", False),
    "app_queue.so": ("queues.conf", False),
    "pbx_config.so": ("extensions.conf", True),
    "app_voicemail.so": ("voicemail.conf", True),
}


@dataclass
class Dialplan:
    name: str
    file: str
    extensions: dict[str, list[tuple[str, str, int]]] = field(
        default_factory=dict
    )  # exten -> (prio, app, line)
    includes: list[str] = field(default_factory=list)


@dataclass
class LoadedConfig:
    endpoints: dict[str, Section] = field(default_factory=dict)
    auths: dict[str, Section] = field(default_factory=dict)
    aors: dict[str, Section] = field(default_factory=dict)
    queues: dict[str, Section] = field(default_factory=dict)
    contexts: dict[str, Dialplan] = field(default_factory=dict)
    mailboxes: dict[str, list[str]] = field(default_factory=dict)  # voicemail context -> mailboxes


QueuesChanged = Callable[[dict[str, Section]], None]


class AsteriskConfig:
    """``root`` is the simulated /etc/asterisk. ``on_queues`` is told the queue sections after
    every successful app_queue load (the world makes them real queues)."""

    def __init__(self, root: Path | None, on_queues: QueuesChanged | None = None) -> None:
        self.root = root
        self.loaded = LoadedConfig()
        self.on_queues = on_queues
        self.reloads: list[str] = []  # every module reload attempted, in order
        self._fail_next: list[str] = []
        self.errors: list[str] = []  # what Asterisk would have logged

    def fail_next_reload(self, module: str = "*") -> None:
        """The next reload of ``module`` (any module: ``*``) reports a reload failure and loads
        nothing, as when a module rejects its configuration as a whole."""
        self._fail_next.append(module)

    def load_all(self) -> None:
        for module in MODULES:
            self.reload(module)

    def reload(self, module: str) -> str:
        """One ``module reload`` as the CLI prints it (without the trailing newline)."""
        name = module if module.endswith(".so") else f"{module}.so"
        if name not in MODULES:
            return f"No such module '{module}'"
        self.reloads.append(name)
        for i, wanted in enumerate(self._fail_next):
            if wanted in ("*", name):
                del self._fail_next[i]
                return f"The module '{module}' reported a reload failure"
        filename, fatal = MODULES[name]
        if self.root is None:
            return f"Module '{module}' reloaded successfully."
        warnings: list[str] = []
        try:
            sections = parse_config(self.root, filename, warnings=warnings)
        except FileNotFoundError:
            sections = []  # no such file: the module runs without configuration
        except ConfigError as exc:
            self.errors.append(f"{filename}: {exc}")
            log.warning("simulated Asterisk: %s is invalid: %s", filename, exc)
            if fatal:
                return f"The module '{module}' reported a reload failure"
            return f"Module '{module}' reloaded successfully."  # keeps what it had
        for warning in warnings:
            self.errors.append(f"{filename}: {warning}")
            log.warning("simulated Asterisk: %s: %s (the rest of that file is ignored)", filename, warning)
        getattr(self, f"_load_{name.removesuffix('.so')}")(sections)
        return f"Module '{module}' reloaded successfully."

    # ----------------------------------------------------------------- per module

    def _load_res_pjsip(self, sections: list[Section]) -> None:
        def of(kind: str) -> dict[str, Section]:
            return {s.name: s for s in sections if not s.template and s.get("type") == kind}

        self.loaded.endpoints, self.loaded.auths, self.loaded.aors = of("endpoint"), of("auth"), of("aor")

    def _load_app_queue(self, sections: list[Section]) -> None:
        self.loaded.queues = {s.name: s for s in sections if not s.template and s.name != "general"}
        if self.on_queues is not None:
            self.on_queues(self.loaded.queues)

    def _load_pbx_config(self, sections: list[Section]) -> None:
        contexts: dict[str, Dialplan] = {}
        for s in sections:
            if s.template or s.name in ("general", "globals"):
                continue
            ctx = contexts.setdefault(s.name, Dialplan(s.name, s.file))
            exten = ""
            prio = 0
            for n, (key, value) in enumerate(s.items, 1):
                if key == "include":
                    ctx.includes.append(value)
                elif key in ("exten", "same"):
                    parts = value.split(",", 2)
                    if key == "exten" and len(parts) == 3:
                        exten, label, app = parts
                    elif key == "same" and len(parts) >= 2 and exten:
                        label, app = parts[0], ",".join(parts[1:])
                    else:
                        continue
                    prio = (
                        prio + 1
                        if label.strip() == "n"
                        else (int(label) if label.strip().isdigit() else prio)
                    )
                    shown = label.strip() if label.strip() == "hint" else str(prio)
                    ctx.extensions.setdefault(exten.strip(), []).append((shown, app.strip(), n))
        self.loaded.contexts = contexts

    def _load_app_voicemail(self, sections: list[Section]) -> None:
        self.loaded.mailboxes = {
            s.name: [k for k, _ in s.items]
            for s in sections
            if not s.template and s.name not in ("general", "zonemessages")
        }

    # ----------------------------------------------------------------- CLI

    def pjsip_show_endpoints(self, like: str | None = None) -> list[str]:
        try:
            rx = re.compile(like) if like else None
        except re.error:
            return [f"Regular expression '{like}' is invalid"]
        names = sorted(n for n in self.loaded.endpoints if rx is None or rx.search(n))
        if not names:
            return ["No objects found.", ""]
        out = [
            "",
            " Endpoint:  <Endpoint/CID.....................................>  <State.....>  <Channels.>",
            "    I/OAuth:  <AuthId/UserName...........................................................>",
            "        Aor:  <Aor............................................>  <MaxContact>",
            "==========================================================================================",
            "",
        ]
        for name in names:
            out += self._endpoint_lines(name)
        return [*out, "", f"Objects found: {len(names)}", ""]

    def pjsip_show_endpoint(self, name: str) -> list[str]:
        if name not in self.loaded.endpoints:
            return [f"Unable to find object {name}.", ""]
        return ["", *self._endpoint_lines(name), ""]

    def _endpoint_lines(self, name: str) -> list[str]:
        ep = self.loaded.endpoints[name]
        lines = [f" Endpoint:  {name:<53}Unavailable   0 of inf"]
        for auth_name in filter(None, (a.strip() for a in (ep.get("auth") or "").split(","))):
            auth = self.loaded.auths.get(auth_name)
            user = auth.get("username", auth_name) if auth else auth_name
            lines.append(f"     InAuth:  {auth_name}/{user}")
        for aor_name in filter(None, (a.strip() for a in (ep.get("aors") or "").split(","))):
            aor = self.loaded.aors.get(aor_name)
            lines.append(f"        Aor:  {aor_name:<49}{aor.get('max_contacts', '0') if aor else '0'}")
        return lines

    def dialplan_show(self, context: str | None) -> tuple[bool, list[str]]:
        if context is not None and context not in self.loaded.contexts:
            return False, [f"There is no existence of '{context}' context"]
        contexts = [self.loaded.contexts[context]] if context else list(self.loaded.contexts.values())
        out: list[str] = []
        extens = prios = 0
        for ctx in contexts:
            out.append(f"[ Context '{ctx.name}' created by 'pbx_config' ]")
            for exten, steps in ctx.extensions.items():
                extens += 1
                for i, (prio, app, line) in enumerate(steps):
                    prios += prio != "hint"
                    head = f"  '{exten}' =>" if i == 0 else ""
                    label = "hint:" if prio == "hint" else f"{prio}."
                    out.append(f"{head:<18}{label:>4} {app:<40}[{ctx.file}:{line}]")
            for inc in ctx.includes:
                out.append(f"  Include =>        '{inc}'{'':<30}[pbx_config]")
            out.append("")
        plural = "s" if extens != 1 else ""
        out.append(
            f"-= {extens} extension{plural} ({prios} priorit{'ies' if prios != 1 else 'y'}) in "
            f"{len(contexts)} context{'s' if len(contexts) != 1 else ''}. =-"
        )
        return True, out
